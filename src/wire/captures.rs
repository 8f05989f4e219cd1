//! Real packets, captured for the codecs' tests (and for the IP layer's,
//! through `crate::wire::captures`): bytes a Linux kernel and the everyday
//! tools put on the wire, so the codecs are checked against more than their
//! own emit.
//!
//! How they were captured (issue 13, as root, Linux 6.18, iputils
//! 20221126, tcpdump 4.99.3): two throwaway network namespaces joined by a
//! veth pair, 192.0.2.2 (the tools) and 192.0.2.1 (the kernel answering),
//! MTU 1500, transmit checksum offload off on both ends (`ethtool -K va
//! tx off`: with it on, a veth carries UDP with only the pseudo-header part
//! of the checksum, which is not what a TUN device reads),
//! `tcpdump -i va -n -U -w cap.pcap ip` on the 192.0.2.1 side,
//! then from 192.0.2.2: `ping -c1 192.0.2.1`, `ping -c1 -s 4000 192.0.2.1`,
//! and a Python `socket.sendto(b"hello tunstack", ("192.0.2.1", 7007))`
//! from port 40000. Each constant is one frame of that capture without
//! its 14-byte Ethernet header: the IPv4 datagram as a TUN device
//! (`IFF_NO_PI`) reads it. Written as tcpdump `-x` prints it: hex, 16 bytes
//! a line, whitespace ignored by [`bytes`].
//!
//! Test-only; it must never do I/O (the bytes are in the code, so CI needs
//! neither tcpdump nor root to run these tests).

/// Decodes one of the hex constants below (whitespace ignored).
///
/// # Panics
/// On a character that is not a hex digit or an odd number of digits: the
/// constants are fixed, so that is a typo in this file.
pub(crate) fn bytes(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => panic!("not a hex digit: {}", char::from(b)),
        })
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// `ping -c1 192.0.2.1` from 192.0.2.2: echo request, id 8312 seq 1, 56 data bytes, DF.
pub(crate) const PING_REQUEST: &str = "
    4500 0054 24ba 4000 4001 91eb c000 0202
    c000 0201 0800 ab28 2078 0001 4169 116b
    0000 0000 0db7 0d00 0000 0000 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637
";

/// The kernel's echo reply to [`PING_REQUEST`] (ident 7457, DF clear).
pub(crate) const PING_REPLY: &str = "
    4500 0054 1d21 0000 4001 d984 c000 0201
    c000 0202 0000 b328 2078 0001 4169 116b
    0000 0000 0db7 0d00 0000 0000 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637
";

/// `ping -c1 -s 4000 192.0.2.1`, MTU 1500: first fragment of the echo request (ident 9403, MF, offset 0, 1480 payload bytes: the ICMP header and the first 1472 data bytes).
pub(crate) const FRAG_REQUEST_1: &str = "
    4500 05dc 24bb 2000 4001 ac62 c000 0202
    c000 0201 0800 2336 207a 0001 4169 116b
    0000 0000 7fe5 0d00 0000 0000 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf
";

/// Second fragment of the same request: MF, offset 1480, 1480 bytes.
pub(crate) const FRAG_REQUEST_2: &str = "
    4500 05dc 24bb 20b9 4001 aba9 c000 0202
    c000 0201 c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687
";

/// Last fragment of the same request: MF clear, offset 2960, 1048 bytes (4008 ICMP bytes in all).
pub(crate) const FRAG_REQUEST_3: &str = "
    4500 042c 24bb 0172 4001 cca0 c000 0202
    c000 0201 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f
";

/// The kernel's reply to the fragmented request, fragmented by the kernel as well: first fragment (ident 7458, MF, offset 0).
pub(crate) const FRAG_REPLY_1: &str = "
    4500 05dc 1d22 2000 4001 b3fb c000 0201
    c000 0202 0000 2b36 207a 0001 4169 116b
    0000 0000 7fe5 0d00 0000 0000 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf
";

/// Second fragment of the kernel's reply (MF, offset 1480).
pub(crate) const FRAG_REPLY_2: &str = "
    4500 05dc 1d22 20b9 4001 b342 c000 0201
    c000 0202 c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687 8889 8a8b
    8c8d 8e8f 9091 9293 9495 9697 9899 9a9b
    9c9d 9e9f a0a1 a2a3 a4a5 a6a7 a8a9 aaab
    acad aeaf b0b1 b2b3 b4b5 b6b7 b8b9 babb
    bcbd bebf c0c1 c2c3 c4c5 c6c7 c8c9 cacb
    cccd cecf d0d1 d2d3 d4d5 d6d7 d8d9 dadb
    dcdd dedf e0e1 e2e3 e4e5 e6e7 e8e9 eaeb
    eced eeef f0f1 f2f3 f4f5 f6f7 f8f9 fafb
    fcfd feff 0001 0203 0405 0607 0809 0a0b
    0c0d 0e0f 1011 1213 1415 1617 1819 1a1b
    1c1d 1e1f 2021 2223 2425 2627 2829 2a2b
    2c2d 2e2f 3031 3233 3435 3637 3839 3a3b
    3c3d 3e3f 4041 4243 4445 4647 4849 4a4b
    4c4d 4e4f 5051 5253 5455 5657 5859 5a5b
    5c5d 5e5f 6061 6263 6465 6667 6869 6a6b
    6c6d 6e6f 7071 7273 7475 7677 7879 7a7b
    7c7d 7e7f 8081 8283 8485 8687
";

/// Last fragment of the kernel's reply (offset 2960).
pub(crate) const FRAG_REPLY_3: &str = "
    4500 042c 1d22 0172 4001 d439 c000 0201
    c000 0202 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f a0a1 a2a3
    a4a5 a6a7 a8a9 aaab acad aeaf b0b1 b2b3
    b4b5 b6b7 b8b9 babb bcbd bebf c0c1 c2c3
    c4c5 c6c7 c8c9 cacb cccd cecf d0d1 d2d3
    d4d5 d6d7 d8d9 dadb dcdd dedf e0e1 e2e3
    e4e5 e6e7 e8e9 eaeb eced eeef f0f1 f2f3
    f4f5 f6f7 f8f9 fafb fcfd feff 0001 0203
    0405 0607 0809 0a0b 0c0d 0e0f 1011 1213
    1415 1617 1819 1a1b 1c1d 1e1f 2021 2223
    2425 2627 2829 2a2b 2c2d 2e2f 3031 3233
    3435 3637 3839 3a3b 3c3d 3e3f 4041 4243
    4445 4647 4849 4a4b 4c4d 4e4f 5051 5253
    5455 5657 5859 5a5b 5c5d 5e5f 6061 6263
    6465 6667 6869 6a6b 6c6d 6e6f 7071 7273
    7475 7677 7879 7a7b 7c7d 7e7f 8081 8283
    8485 8687 8889 8a8b 8c8d 8e8f 9091 9293
    9495 9697 9899 9a9b 9c9d 9e9f
";

/// A Python datagram socket bound to 192.0.2.2:40000 sends `hello tunstack` (14 bytes) to 192.0.2.1:7007, where nothing listens (DF set, UDP checksum in use).
pub(crate) const UDP_TO_CLOSED_PORT: &str = "
    4500 002a 2caa 4000 4011 8a15 c000 0202
    c000 0201 9c40 1b5f 0016 c576 6865 6c6c
    6f20 7475 6e73 7461 636b
";

/// The kernel's answer to [`UDP_TO_CLOSED_PORT`]: ICMP destination unreachable, code 3, quoting the whole offending datagram (Linux quotes up to 576 bytes in all, RFC 1812; RFC 792 asks for at least the header and 8 bytes). DSCP/ECN 0xc0 (network control).
pub(crate) const PORT_UNREACHABLE: &str = "
    45c0 0046 1d58 0000 4001 d89b c000 0201
    c000 0202 0303 8128 0000 0000 4500 002a
    2caa 4000 4011 8a15 c000 0202 c000 0201
    9c40 1b5f 0016 c576 6865 6c6c 6f20 7475
    6e73 7461 636b
";
