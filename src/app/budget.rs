//! The descriptor budget: how many sessions each served protocol may hold,
//! so that together they stay below `RLIMIT_NOFILE` with a reserve.
//!
//! Owns the split, a pure function of the limit and the claims (no system
//! call here: `app` reads the limit with `reactor::descriptor_limit` and
//! applies the result). Without it one protocol flooded with idle
//! connections took every descriptor, and every other protocol's next
//! `accept` or file open failed with `EMFILE`.
//!
//! The rule is *water-filling*: every claim gets an equal share of the
//! descriptors left after the reserve and the listening sockets; a claim
//! whose own bound (an explicit setting, or the protocol's own default such
//! as TFTP's 256 sessions) fits in its share keeps it, and what it leaves
//! is shared again among the rest. A bound that does not fit is clamped to
//! the share (and `app` warns). A claim without a bound (TCP connections,
//! unless `--max-connections` is given) takes its full share.

use crate::config::Protocol;

/// Descriptors no protocol may claim: standard streams, the poll instance,
/// the timerfd, the signal pipe, the file root, and slack for descriptors
/// that live a moment (a connect, a file opened and closed in one call), so
/// that a budget-exhausting load still leaves the process room to work.
pub const RESERVE_FDS: u64 = 64;

/// One protocol's claim on descriptors for its sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Whose claim.
    pub protocol: Protocol,
    /// Descriptors one session holds (a TCP connection: 1; with an open
    /// file: 2; a TFTP transfer: its socket and its file).
    pub fds_each: u64,
    /// The most sessions it wants, if it has a bound of its own.
    pub ceiling: Option<usize>,
}

/// What a claim was granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Whose grant.
    pub protocol: Protocol,
    /// Most sessions at once (at least 1, so a protocol is never shut out
    /// entirely, even below the reserve).
    pub sessions: usize,
    /// Descriptors one session holds.
    pub fds_each: u64,
    /// The claim's ceiling did not fit its share and was lowered to it.
    pub clamped_from: Option<usize>,
}

/// The whole split, for applying and logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The descriptor limit it was made for.
    pub limit: u64,
    /// Descriptors held by listening sockets, outside every share.
    pub listeners: u64,
    /// One grant per claim, in claim order.
    pub grants: Vec<Grant>,
}

impl Budget {
    /// Sessions granted to `protocol`; `None` when it made no claim.
    pub fn sessions(&self, protocol: Protocol) -> Option<usize> {
        self.grants
            .iter()
            .find(|g| g.protocol == protocol)
            .map(|g| g.sessions)
    }

    /// Descriptors the grants may take together, at most.
    pub fn claimed(&self) -> u64 {
        self.grants.iter().fold(0, |sum, g| {
            sum.saturating_add((g.sessions as u64).saturating_mul(g.fds_each))
        })
    }
}

/// Sockets a served protocol listens on, and its claim (`None`: its
/// sessions hold no descriptor, e.g. hello over UDP answers statelessly).
/// `ceiling` is the bound its configuration states, if any.
#[expect(
    clippy::match_same_arms,
    reason = "one arm per protocol, each saying why it holds what it holds"
)]
pub fn needs(protocol: Protocol, ceiling: Option<usize>) -> (u64, Option<Claim>) {
    let claim = |fds_each| {
        Some(Claim {
            protocol,
            fds_each,
            ceiling,
        })
    };
    match protocol {
        // TCP and UDP sockets; each connection is one descriptor (lab's
        // files are generated, and its UDP sessions share the socket).
        Protocol::Hello | Protocol::Lab => (2, claim(1)),
        Protocol::Msg => (1, claim(1)),
        // A connection and the file it reads or writes.
        Protocol::Tcpfile => (1, claim(2)),
        // Sessions share the server socket; each holds its open file.
        Protocol::Stopwait => (1, claim(1)),
        // A transfer socket of its own (the TID) and the file.
        Protocol::Tftp => (1, claim(2)),
        // Each client's flow has its own upstream socket.
        Protocol::Proxy => (1, claim(1)),
        // The device and its capture file; its sessions hold none.
        Protocol::Tunstack => (2, None),
        // Connections share the server socket; each holds its open file.
        Protocol::Window => (1, claim(1)),
    }
}

/// Splits `limit` descriptors, less [`RESERVE_FDS`] and `listeners`, between
/// `claims` by water-filling (see the module docs).
pub fn split(limit: u64, listeners: u64, claims: &[Claim]) -> Budget {
    let mut left = limit.saturating_sub(RESERVE_FDS.saturating_add(listeners));
    let mut granted: Vec<Option<Grant>> = vec![None; claims.len()];
    // Bounded: each round settles at least one claim or ends.
    loop {
        let pending: Vec<usize> = (0..claims.len())
            .filter(|&i| granted[i].is_none())
            .collect();
        if pending.is_empty() {
            break;
        }
        let share = left / pending.len() as u64;
        let fits = |c: &Claim| {
            c.ceiling
                .is_some_and(|n| (n as u64).saturating_mul(c.fds_each) <= share)
        };
        let settled: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&i| fits(&claims[i]))
            .collect();
        if settled.is_empty() {
            for i in pending {
                let c = claims[i];
                let fair = usize::try_from(share / c.fds_each.max(1)).unwrap_or(usize::MAX);
                let sessions = fair.max(1);
                granted[i] = Some(Grant {
                    protocol: c.protocol,
                    sessions,
                    fds_each: c.fds_each,
                    clamped_from: c.ceiling.filter(|&n| n > sessions),
                });
            }
            break;
        }
        for i in settled {
            let c = claims[i];
            let sessions = c.ceiling.unwrap_or(0).max(1);
            left -= (sessions as u64 * c.fds_each).min(left);
            granted[i] = Some(Grant {
                protocol: c.protocol,
                sessions,
                fds_each: c.fds_each,
                clamped_from: None,
            });
        }
    }
    Budget {
        limit,
        listeners,
        grants: granted.into_iter().flatten().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(protocol: Protocol, fds_each: u64, ceiling: Option<usize>) -> Claim {
        Claim {
            protocol,
            fds_each,
            ceiling,
        }
    }

    /// Every protocol `serve` runs by default, as `app` builds the claims.
    fn defaults(tftp: usize, tcp: Option<usize>) -> (u64, Vec<Claim>) {
        let mut listeners = 0;
        let mut claims = Vec::new();
        for p in [
            Protocol::Hello,
            Protocol::Lab,
            Protocol::Msg,
            Protocol::Tcpfile,
            Protocol::Stopwait,
            Protocol::Tftp,
            Protocol::Proxy,
        ] {
            let ceiling = match p {
                Protocol::Tftp => Some(tftp),
                Protocol::Proxy => Some(1024),
                Protocol::Stopwait => None,
                _ => tcp,
            };
            let (l, c) = needs(p, ceiling);
            listeners += l;
            claims.extend(c);
        }
        (listeners, claims)
    }

    #[test]
    fn the_grants_stay_below_the_limit_less_the_reserve() {
        for limit in [256, 1024, 4096, 20_000, 1 << 20] {
            let (listeners, claims) = defaults(256, None);
            let b = split(limit, listeners, &claims);
            assert_eq!(b.grants.len(), claims.len());
            assert!(
                b.claimed() + listeners + RESERVE_FDS <= limit,
                "limit {limit}: {b:?}"
            );
        }
    }

    #[test]
    fn a_1024_limit_is_shared_equally_by_seven_protocols() {
        let (listeners, claims) = defaults(256, None);
        assert_eq!(listeners, 9);
        let b = split(1024, listeners, &claims);
        // (1024 - 64 - 9) / 7 = 135 descriptors each.
        assert_eq!(b.sessions(Protocol::Hello), Some(135));
        assert_eq!(b.sessions(Protocol::Msg), Some(135));
        assert_eq!(b.sessions(Protocol::Tcpfile), Some(67), "2 fds each");
        assert_eq!(b.sessions(Protocol::Tftp), Some(67));
        let tftp = b.grants.iter().find(|g| g.protocol == Protocol::Tftp);
        assert_eq!(tftp.unwrap().clamped_from, Some(256), "256 did not fit");
        assert_eq!(b.sessions(Protocol::Proxy), Some(135));
        assert_eq!(b.sessions(Protocol::Window), None);
    }

    #[test]
    fn a_bound_that_fits_stands_and_its_surplus_goes_to_the_rest() {
        let (listeners, claims) = defaults(256, None);
        let b = split(20_000, listeners, &claims);
        // TFTP's 256 × 2 and the proxy's 1024 fit their shares of 2846...
        assert_eq!(b.sessions(Protocol::Tftp), Some(256));
        assert_eq!(b.sessions(Protocol::Proxy), Some(1024));
        assert!(b.grants.iter().all(|g| g.clamped_from.is_none()));
        // ...and the other five share what they leave:
        // (20000 - 73 - 512 - 1024) / 5 = 3678 descriptors each.
        assert_eq!(b.sessions(Protocol::Hello), Some(3678));
        assert_eq!(b.sessions(Protocol::Stopwait), Some(3678));
        assert_eq!(b.sessions(Protocol::Tcpfile), Some(1839));
    }

    #[test]
    fn an_explicit_tcp_cap_wins_only_when_it_fits() {
        let (listeners, claims) = defaults(256, Some(100));
        let b = split(20_000, listeners, &claims);
        assert_eq!(b.sessions(Protocol::Hello), Some(100));
        assert_eq!(b.sessions(Protocol::Tcpfile), Some(100));

        let (listeners, claims) = defaults(256, Some(100_000));
        let b = split(1024, listeners, &claims);
        let hello = b.grants.iter().find(|g| g.protocol == Protocol::Hello);
        assert_eq!(hello.unwrap().clamped_from, Some(100_000));
        assert_eq!(b.sessions(Protocol::Hello), Some(135));
    }

    #[test]
    fn one_protocol_alone_gets_everything_but_the_reserve() {
        let (listeners, c) = needs(Protocol::Msg, None);
        let b = split(1000, listeners, &c.into_iter().collect::<Vec<_>>());
        assert_eq!(b.sessions(Protocol::Msg), Some(1000 - 64 - 1));
        // hello over UDP claims nothing extra for its datagrams.
        assert_eq!(needs(Protocol::Hello, None).0, 2);
    }

    #[test]
    fn below_the_reserve_every_claim_still_gets_one_session() {
        let claims = [
            claim(Protocol::Hello, 1, None),
            claim(Protocol::Tftp, 2, Some(256)),
        ];
        let b = split(40, 3, &claims);
        assert_eq!(b.sessions(Protocol::Hello), Some(1));
        assert_eq!(b.sessions(Protocol::Tftp), Some(1));
    }

    #[test]
    fn an_unlimited_descriptor_limit_does_not_overflow() {
        let (listeners, claims) = defaults(256, None);
        let b = split(u64::MAX, listeners, &claims);
        assert_eq!(b.sessions(Protocol::Tftp), Some(256));
        assert!(b.sessions(Protocol::Hello).unwrap() > 1 << 40);
    }
}
