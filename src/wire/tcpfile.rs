//! tcpfile request and answer lines.
//!
//! Owns the text of the protocol: `<name>:GET`, `<name>:PUT`,
//! `<name>:PUT:<size>` (spaces allowed around each `:`, as the seed drew
//! `File Name : Choice`), and the answers `OK <size>` and
//! `ERROR <reason>: <name>`. The fields are read from the right, so a name
//! may itself contain `:`. Whether a name is acceptable is the store's
//! business, not the codec's.
//!
//! ```
//! use mioperf::wire::tcpfile::Request;
//! assert_eq!(Request::parse(b"notes.txt : PUT : 12"), Ok(Request::Put { name: "notes.txt", size: Some(12) }));
//! ```

use super::Error;
use bytes::BytesMut;
use core::fmt::{self, Write as _};

/// Longest request line, terminator included.
pub const MAX_REQUEST: usize = 1024;

/// One request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Send me `name`.
    Get {
        /// The file, relative to the server's root.
        name: &'a str,
    },
    /// Store what follows as `name`: exactly `size` bytes, or until the
    /// client shuts its write side down.
    Put {
        /// The file, relative to the server's root.
        name: &'a str,
        /// Bytes that follow, if announced.
        size: Option<u64>,
    },
}

impl<'a> Request<'a> {
    /// Parses one request line (no terminator).
    ///
    /// # Errors
    /// [`Error::UnknownVerb`] when the line ends in neither `GET`, `PUT`
    /// nor `PUT:<size>`, or is not UTF-8; [`Error::BadNumber`] for a bad
    /// size; [`Error::Truncated`] for an empty name.
    pub fn parse(line: &'a [u8]) -> Result<Self, Error> {
        let text = core::str::from_utf8(line).map_err(|_| Error::UnknownVerb)?;
        let mut fields = text.rsplitn(3, ':');
        let last = fields.next().unwrap_or("").trim();
        let (request, rest) = match last {
            "GET" => (Self::Get { name: "" }, rest_after(text, 1)),
            "PUT" => (
                Self::Put {
                    name: "",
                    size: None,
                },
                rest_after(text, 1),
            ),
            digits => {
                let verb = fields.next().map(str::trim);
                if verb != Some("PUT") {
                    return Err(Error::UnknownVerb);
                }
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::BadNumber);
                }
                let size = digits.parse().map_err(|_| Error::BadNumber)?;
                (
                    Self::Put {
                        name: "",
                        size: Some(size),
                    },
                    rest_after(text, 2),
                )
            }
        };
        let name = rest.ok_or(Error::UnknownVerb)?.trim_matches(' ');
        if name.is_empty() {
            return Err(Error::Truncated);
        }
        Ok(match request {
            Self::Get { .. } => Self::Get { name },
            Self::Put { size, .. } => Self::Put { name, size },
        })
    }

    /// Appends the request line, with its `\n`.
    pub fn emit(&self, dst: &mut BytesMut) {
        let _ = match self {
            Self::Get { name } => writeln!(dst, "{name}:GET"),
            Self::Put { name, size: None } => writeln!(dst, "{name}:PUT"),
            Self::Put {
                name,
                size: Some(n),
            } => writeln!(dst, "{name}:PUT:{n}"),
        };
    }
}

/// The text before the last `fields` colons of `text`.
fn rest_after(text: &str, fields: usize) -> Option<&str> {
    let mut end = text.len();
    for _ in 0..fields {
        end = text[..end].rfind(':')?;
    }
    Some(&text[..end])
}

/// Why the server refuses, as `ERROR <reason>: <name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// GET of a missing file.
    NotFound,
    /// PUT of an existing file without `allow_overwrite`.
    Exists,
    /// A name that breaks the rules or leaves the root.
    Forbidden,
    /// Larger than the server's maximum file size.
    TooLarge,
    /// The upload ended before its announced size.
    Short,
    /// The request line is not a request.
    BadRequest,
    /// The server could not read or write the file.
    Failed,
}

impl Refusal {
    /// The reason text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::Exists => "exists",
            Self::Forbidden => "forbidden",
            Self::TooLarge => "too large",
            Self::Short => "short",
            Self::BadRequest => "bad request",
            Self::Failed => "failed",
        }
    }

    fn from_text(text: &str) -> Option<Self> {
        [
            Self::NotFound,
            Self::Exists,
            Self::Forbidden,
            Self::TooLarge,
            Self::Short,
            Self::BadRequest,
            Self::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// One answer line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// `OK <size>`: GET: the file's size (the bytes follow); PUT: bytes stored.
    Ok(u64),
    /// `ERROR <reason>: <name>`.
    Error {
        /// Why.
        reason: Refusal,
        /// The name as the client sent it (control bytes shown as `?`).
        name: &'a str,
    },
}

impl<'a> Response<'a> {
    /// Parses one answer line (no terminator).
    ///
    /// # Errors
    /// [`Error::UnknownVerb`] for anything else.
    pub fn parse(line: &'a [u8]) -> Result<Self, Error> {
        let text = core::str::from_utf8(line).map_err(|_| Error::UnknownVerb)?;
        if let Some(n) = text.strip_prefix("OK ") {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::BadNumber);
            }
            return n.parse().map(Self::Ok).map_err(|_| Error::BadNumber);
        }
        let rest = text.strip_prefix("ERROR ").ok_or(Error::UnknownVerb)?;
        let (reason, name) = rest.split_once(": ").unwrap_or((rest, ""));
        let reason = Refusal::from_text(reason).ok_or(Error::UnknownVerb)?;
        Ok(Self::Error { reason, name })
    }

    /// Appends the answer line, with its `\n`. Control bytes in the name are
    /// shown as `?` so an answer is always one line.
    pub fn emit(&self, dst: &mut BytesMut) {
        let _ = match self {
            Self::Ok(n) => writeln!(dst, "OK {n}"),
            Self::Error { reason, name } => {
                let shown: String = name
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                writeln!(dst, "ERROR {}: {shown}", reason.as_str())
            }
        };
    }
}

impl fmt::Display for Response<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = BytesMut::new();
        self.emit(&mut b);
        f.write_str(String::from_utf8_lossy(&b).trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_request_forms() {
        assert_eq!(
            Request::parse(b"notes.txt:GET"),
            Ok(Request::Get { name: "notes.txt" })
        );
        assert_eq!(
            Request::parse(b"notes.txt:PUT"),
            Ok(Request::Put {
                name: "notes.txt",
                size: None
            })
        );
        assert_eq!(
            Request::parse(b"notes.txt:PUT:100"),
            Ok(Request::Put {
                name: "notes.txt",
                size: Some(100)
            })
        );
        // "File Name : Choice", as the seed draws it.
        assert_eq!(
            Request::parse(b"My File.txt : GET"),
            Ok(Request::Get {
                name: "My File.txt"
            })
        );
        assert_eq!(
            Request::parse(b"a : PUT : 0"),
            Ok(Request::Put {
                name: "a",
                size: Some(0)
            })
        );
        // A name may contain a colon: fields are read from the right.
        assert_eq!(Request::parse(b"c:d:GET"), Ok(Request::Get { name: "c:d" }));
        assert_eq!(
            Request::parse(b"c:d:PUT:5"),
            Ok(Request::Put {
                name: "c:d",
                size: Some(5)
            })
        );
    }

    #[test]
    fn bad_requests() {
        assert_eq!(Request::parse(b"notes.txt"), Err(Error::UnknownVerb));
        assert_eq!(Request::parse(b"notes.txt:get"), Err(Error::UnknownVerb));
        assert_eq!(Request::parse(b":GET"), Err(Error::Truncated));
        assert_eq!(Request::parse(b"   :GET"), Err(Error::Truncated));
        assert_eq!(Request::parse(b"GET"), Err(Error::UnknownVerb));
        assert_eq!(Request::parse(b"a:PUT:-1"), Err(Error::BadNumber));
        assert_eq!(Request::parse(b"a:PUT:+1"), Err(Error::BadNumber));
        assert_eq!(
            Request::parse(b"a:PUT:99999999999999999999999"),
            Err(Error::BadNumber)
        );
        assert_eq!(Request::parse(b"\xff:GET"), Err(Error::UnknownVerb));
    }

    #[test]
    fn answers() {
        let mut b = BytesMut::new();
        Response::Ok(12).emit(&mut b);
        Response::Error {
            reason: Refusal::NotFound,
            name: "x",
        }
        .emit(&mut b);
        Response::Error {
            reason: Refusal::Forbidden,
            name: "a\nb",
        }
        .emit(&mut b);
        assert_eq!(&b[..], b"OK 12\nERROR not found: x\nERROR forbidden: a?b\n");
        assert_eq!(Response::parse(b"OK 12"), Ok(Response::Ok(12)));
        assert_eq!(
            Response::parse(b"ERROR exists: a: b"),
            Ok(Response::Error {
                reason: Refusal::Exists,
                name: "a: b"
            })
        );
        assert_eq!(Response::parse(b"ERROR nope: x"), Err(Error::UnknownVerb));
        assert_eq!(Response::parse(b"OK x"), Err(Error::BadNumber));
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Request::parse(&bytes);
            let _ = Response::parse(&bytes);
        }

        #[test]
        fn requests_round_trip(name in "[a-zA-Z0-9._/-][a-zA-Z0-9._/ :-]{0,30}[a-zA-Z0-9._/-]", size in proptest::option::of(any::<u64>()), get in any::<bool>()) {
            let req = if get { Request::Get { name: &name } } else { Request::Put { name: &name, size } };
            let mut b = BytesMut::new();
            req.emit(&mut b);
            prop_assert_eq!(Request::parse(&b[..b.len() - 1]), Ok(req));
        }
    }
}
