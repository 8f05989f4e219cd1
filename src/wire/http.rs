//! HTTP/1.x message heads and chunked bodies (RFC 9112), as much of them as
//! the index-and-files server and the `GET` client need.
//!
//! Owns the bounded framing of a head ([`HeadBuffer`]: a request line at
//! most [`MAX_REQUEST_LINE`] bytes, a whole request head at most
//! [`MAX_REQUEST_BYTES`]), the request and response grammars
//! ([`Request::parse`], [`Response::parse`]), the response head the server
//! writes ([`ResponseHead::emit`]), the path of a target
//! ([`request_path`]: percent-decoding) and of a link
//! ([`percent_encode`]), and the chunked transfer coding
//! ([`ChunkedDecoder`]). Like every codec in `wire` it never panics,
//! whatever the bytes (property tests below, and the `wire_http` fuzz
//! target), never allocates beyond its bounds, and knows nothing of
//! sessions or files. It is strict where leniency has bitten HTTP before
//! (request smuggling): no whitespace before a header's colon, no folded
//! lines, no bare `\r`, one `Host`, one `Content-Length` value.

use bytes::BytesMut;
use core::fmt::{self, Write as _};

/// Longest request line, terminator included: longer is answered `414 URI
/// Too Long`. 4 KiB is what common servers allow (nginx's default
/// `large_client_header_buffers` line is 8 KiB, Apache's `LimitRequestLine`
/// 8190) halved, still far beyond any name the store accepts (255 bytes,
/// 765 percent-encoded).
pub const MAX_REQUEST_LINE: usize = 4 * 1024;

/// Longest request head (line, headers and the blank line): more is
/// answered `431 Request Header Fields Too Large`. What `curl` and `wget`
/// send is a few hundred bytes; 8 KiB (Apache's and nginx's usual head
/// buffer) leaves room for cookies a browser might add, and bounds what one
/// connection holds before it has asked for anything.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Longest response head the client accepts: servers send more headers
/// than clients (cookies, security policies); 16 KiB covers every real one
/// while bounding what a hostile server makes us hold.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Most header lines in one head: with [`MAX_REQUEST_BYTES`] this bounds the
/// work of parsing, and a head of a hundred fields is an attack, not a
/// client (Apache's `LimitRequestFields` is 100).
pub const MAX_HEADERS: usize = 100;

/// Longest chunk-size line (hex size, extensions, terminator): extensions
/// are allowed but meaningless to us, and a size needs at most 16 digits.
pub const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Most trailer bytes after the last chunk: we ignore trailers, so this
/// only bounds how long a server may make us read them.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Why a head or a chunked body could not be decoded. The server turns
/// each into its status code ([`HeadError::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The request line (terminator included) is longer than its bound.
    LineTooLong,
    /// The head is longer than its bound, or has too many fields.
    TooLarge,
    /// An HTTP version other than 1.x.
    Version,
    /// The bytes break the grammar; the text says where.
    Malformed(&'static str),
}

impl HeadError {
    /// The status a server answers this with.
    pub const fn status(self) -> Status {
        match self {
            Self::LineTooLong => Status::UriTooLong,
            Self::TooLarge => Status::HeaderFieldsTooLarge,
            Self::Version => Status::VersionNotSupported,
            Self::Malformed(_) => Status::BadRequest,
        }
    }

    /// A short description, for logs and `CloseReason::Protocol`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LineTooLong => "request line too long",
            Self::TooLarge => "head too large",
            Self::Version => "unsupported HTTP version",
            Self::Malformed(why) => why,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for HeadError {}

/// Gathers a head from bytes split anywhere: it copies bytes until the
/// blank line that ends the head and no further, so what follows the head
/// (a body) stays in the caller's input.
#[derive(Clone, Debug)]
pub struct HeadBuffer {
    buf: Vec<u8>,
    max_line: usize,
    max: usize,
    line_done: bool,
    complete: bool,
    /// Skip empty lines before the first line (requests only).
    skip_leading_blank: bool,
}

impl HeadBuffer {
    /// A request head: bounded by [`MAX_REQUEST_LINE`] and
    /// [`MAX_REQUEST_BYTES`].
    /// Empty lines before the request line are skipped, as RFC 9112 §2.2
    /// asks of a server (a client may end a previous body with a stray
    /// CRLF); they count toward no bound, and the request timeout limits
    /// how long a peer may send them.
    pub fn request() -> Self {
        Self::new(MAX_REQUEST_LINE, MAX_REQUEST_BYTES, true)
    }

    /// A response head: bounded by [`MAX_RESPONSE_HEAD`] only.
    pub fn response() -> Self {
        Self::new(MAX_RESPONSE_HEAD, MAX_RESPONSE_HEAD, false)
    }

    fn new(max_line: usize, max: usize, skip_leading_blank: bool) -> Self {
        Self {
            buf: Vec::new(),
            max_line: max_line.min(max),
            max,
            line_done: false,
            complete: false,
            skip_leading_blank,
        }
    }

    /// Takes bytes of the head. `Ok(Some(n))`: the head is complete, and
    /// its end is the `n`th byte of `bytes` (the rest is not the head's);
    /// `Ok(None)`: all of `bytes` taken, more needed. After completion it
    /// takes nothing more (`Ok(Some(0))`).
    ///
    /// # Errors
    /// [`HeadError::LineTooLong`] or [`HeadError::TooLarge`] as soon as the
    /// bytes can no longer become a head within the bounds.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<usize>, HeadError> {
        if self.complete {
            return Ok(Some(0));
        }
        for (i, &b) in bytes.iter().enumerate() {
            if self.skip_leading_blank && self.buf.is_empty() && (b == b'\r' || b == b'\n') {
                continue;
            }
            self.buf.push(b);
            if b == b'\n' {
                self.line_done = true;
                if self.buf.ends_with(b"\n\n") || self.buf.ends_with(b"\n\r\n") {
                    self.complete = true;
                    return Ok(Some(i + 1));
                }
            }
            // Full and not complete: no byte can end it within the bound.
            if !self.line_done && self.buf.len() >= self.max_line {
                return Err(HeadError::LineTooLong);
            }
            if self.buf.len() >= self.max {
                return Err(HeadError::TooLarge);
            }
        }
        Ok(None)
    }

    /// The head so far (the whole head once [`push`](Self::push) said so).
    pub fn head(&self) -> &[u8] {
        &self.buf
    }

    /// Whether any byte arrived.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The protocol version of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1 (and any later 1.x, which a 1.1 server answers as 1.1).
    Http11,
}

/// A request method. Only `GET` and `HEAD` mean anything here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method<'a> {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// Any other token.
    Other(&'a str),
}

/// A parsed request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method<'a>,
    /// The request target as sent (see [`request_path`]).
    pub target: &'a str,
    /// The version.
    pub version: Version,
    /// The `Host` field, if any.
    pub host: Option<&'a str>,
}

/// A parsed response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The version.
    pub version: Version,
    /// The three-digit status code.
    pub status: u16,
    /// The reason phrase (may be empty).
    pub reason: &'a str,
    /// `Content-Length`, if given.
    pub content_length: Option<u64>,
    /// Whether the body is chunked (`Transfer-Encoding` ending in `chunked`).
    pub chunked: bool,
}

/// The lines of a head, without terminators; the blank line ends them.
fn lines(head: &[u8]) -> impl Iterator<Item = Result<&[u8], HeadError>> {
    head.split(|&b| b == b'\n')
        .take_while(|l| !l.is_empty() && *l != b"\r")
        .map(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            if l.contains(&b'\r') {
                Err(HeadError::Malformed("bare CR"))
            } else {
                Ok(l)
            }
        })
}

/// RFC 9110's `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// `HTTP/1.x`, as a version; any other major version is refused.
fn parse_version(v: &[u8]) -> Result<Version, HeadError> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major, minor) {
                (b'1', b'0') => Ok(Version::Http10),
                (b'1', _) => Ok(Version::Http11),
                _ => Err(HeadError::Version),
            }
        }
        _ => Err(HeadError::Malformed("bad version")),
    }
}

/// One `name: value` field line, value without surrounding whitespace.
fn field(line: &[u8]) -> Result<(&[u8], &[u8]), HeadError> {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(HeadError::Malformed("folded header line"));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HeadError::Malformed("header without colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if !is_token(name) {
        return Err(HeadError::Malformed("bad header name"));
    }
    // Visible ASCII, space, tab and obs-text; no other control byte.
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HeadError::Malformed("control byte in a header"));
    }
    Ok((name, value.trim_ascii()))
}

/// The fields of a head after its first line, at most [`MAX_HEADERS`].
fn fields<'a>(
    rest: impl Iterator<Item = Result<&'a [u8], HeadError>>,
) -> impl Iterator<Item = Result<(&'a [u8], &'a [u8]), HeadError>> {
    rest.enumerate().map(|(i, line)| {
        if i >= MAX_HEADERS {
            return Err(HeadError::TooLarge);
        }
        field(line?)
    })
}

impl<'a> Request<'a> {
    /// Parses a whole request head (as [`HeadBuffer`] gathered it).
    ///
    /// # Errors
    /// [`HeadError::Malformed`] for a broken request line or field,
    /// [`HeadError::Version`] for HTTP other than 1.x,
    /// [`HeadError::TooLarge`] for more than [`MAX_HEADERS`] fields.
    pub fn parse(head: &'a [u8]) -> Result<Self, HeadError> {
        let mut lines = lines(head);
        let line = lines
            .next()
            .ok_or(HeadError::Malformed("empty request"))??;
        let mut parts = line.split(|&b| b == b' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HeadError::Malformed("bad request line"));
        };
        if !is_token(method) {
            return Err(HeadError::Malformed("bad method"));
        }
        if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
            return Err(HeadError::Malformed("bad request target"));
        }
        let version = parse_version(version)?;
        let mut host = None;
        for f in fields(lines) {
            let (name, value) = f?;
            if name.eq_ignore_ascii_case(b"host") {
                if host.is_some() {
                    return Err(HeadError::Malformed("more than one Host"));
                }
                host = Some(
                    core::str::from_utf8(value).map_err(|_| HeadError::Malformed("bad Host"))?,
                );
            }
        }
        // RFC 9112 §3.2: a 1.1 request without Host gets a 400.
        if version == Version::Http11 && host.is_none() {
            return Err(HeadError::Malformed("no Host"));
        }
        // Both checked as ASCII above.
        let ascii = |b: &'a [u8]| core::str::from_utf8(b).unwrap_or_default();
        let method = match method {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            other => Method::Other(ascii(other)),
        };
        Ok(Self {
            method,
            target: ascii(target),
            version,
            host,
        })
    }
}

impl<'a> Response<'a> {
    /// Parses a whole response head.
    ///
    /// # Errors
    /// [`HeadError::Malformed`] for a broken status line or field, a bad or
    /// conflicting `Content-Length`, or a transfer coding other than
    /// `chunked` last; [`HeadError::Version`]; [`HeadError::TooLarge`].
    pub fn parse(head: &'a [u8]) -> Result<Self, HeadError> {
        let mut lines = lines(head);
        let line = lines
            .next()
            .ok_or(HeadError::Malformed("empty response"))??;
        let mut parts = line.splitn(3, |&b| b == b' ');
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return Err(HeadError::Malformed("bad status line"));
        };
        let version = parse_version(version)?;
        let status = match code {
            [a, b, c] if code.iter().all(u8::is_ascii_digit) => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(HeadError::Malformed("bad status code")),
        };
        let reason = core::str::from_utf8(parts.next().unwrap_or_default())
            .map_err(|_| HeadError::Malformed("bad reason phrase"))?;
        let mut content_length = None;
        let mut chunked = false;
        for f in fields(lines) {
            let (name, value) = f?;
            if name.eq_ignore_ascii_case(b"content-length") {
                // A list of one repeated value is allowed (RFC 9110 §8.6).
                for v in value.split(|&b| b == b',') {
                    let n = parse_decimal(v.trim_ascii())?;
                    if content_length.is_some_and(|m| m != n) {
                        return Err(HeadError::Malformed("conflicting Content-Length"));
                    }
                    content_length = Some(n);
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                let last = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii();
                if !last.eq_ignore_ascii_case(b"chunked") {
                    return Err(HeadError::Malformed("unsupported transfer coding"));
                }
                chunked = true;
            }
        }
        Ok(Self {
            version,
            status,
            reason,
            content_length,
            chunked,
        })
    }

    /// Whether this response can have no body whatever its fields say
    /// (RFC 9112 §6.3: 1xx, 204 and 304).
    pub fn is_bodiless(&self) -> bool {
        self.status < 200 || self.status == 204 || self.status == 304
    }
}

/// A non-negative decimal that fits in `u64`.
fn parse_decimal(s: &[u8]) -> Result<u64, HeadError> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Malformed("bad Content-Length"));
    }
    s.iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(HeadError::Malformed("bad Content-Length"))
}

/// The path of a request target, percent-decoded: origin form (`/a%20b?q`)
/// or absolute form (`http://host/a`), without query or fragment. Always
/// starts with `/`.
///
/// # Errors
/// [`HeadError::Malformed`] for any other form (`*`, authority form), a
/// broken `%` escape, or a path that is not UTF-8 once decoded.
pub fn request_path(target: &str) -> Result<String, HeadError> {
    let path = match split_scheme(target) {
        // The authority ends at the path, the query or the fragment;
        // `http://host` alone (or with a query) names the root.
        Some(rest) => match rest.find(['/', '?', '#']) {
            Some(end) if rest[end..].starts_with('/') => &rest[end..],
            _ => "/",
        },
        None => target,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(HeadError::Malformed("bad request target"));
    }
    let mut out = Vec::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = |d: Option<u8>| d.and_then(|d| char::from(d).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(bytes.next()), hex(bytes.next())) else {
                return Err(HeadError::Malformed("bad percent escape"));
            };
            // Two hex digits: at most 0xff.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| HeadError::Malformed("path is not UTF-8"))
}

/// What follows `http://` or `https://` (any case) in `target`, if it
/// starts with either.
fn split_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        target
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &target[scheme.len()..])
    })
}

/// Appends `name` to `out` with every byte but RFC 3986's unreserved ones
/// (`A-Z a-z 0-9 - . _ ~`) percent-encoded: safe as a path segment, in an
/// HTML attribute, and never mistaken for a scheme (`a:b`).
pub fn percent_encode(name: &str, out: &mut String) {
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The statuses this server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200.
    Ok,
    /// 400.
    BadRequest,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 405 (with `Allow`).
    MethodNotAllowed,
    /// 414.
    UriTooLong,
    /// 431.
    HeaderFieldsTooLarge,
    /// 500.
    InternalError,
    /// 505.
    VersionNotSupported,
}

impl Status {
    /// The code.
    pub const fn code(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::BadRequest => 400,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::UriTooLong => 414,
            Self::HeaderFieldsTooLarge => 431,
            Self::InternalError => 500,
            Self::VersionNotSupported => 505,
        }
    }

    /// The reason phrase.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::BadRequest => "Bad Request",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::UriTooLong => "URI Too Long",
            Self::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Self::InternalError => "Internal Server Error",
            Self::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// The methods the server allows, for `Allow`.
pub const ALLOW: &str = "GET, HEAD";

/// A response head as the server writes it: always HTTP/1.1 (a 1.1 server
/// answers 1.0 requests as 1.1, RFC 9110 §2.5) and always
/// `Connection: close`, since the server answers one request per
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// The status.
    pub status: Status,
    /// `Content-Length`; `None`: the body ends when the connection does.
    pub content_length: Option<u64>,
    /// `Content-Type`.
    pub content_type: &'a str,
}

impl ResponseHead<'_> {
    /// Appends the head, blank line included.
    pub fn emit(&self, out: &mut BytesMut) {
        let mut s = String::with_capacity(160);
        let _ = write!(
            s,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n",
            self.status.code(),
            self.status.reason(),
            self.content_type
        );
        if let Some(n) = self.content_length {
            let _ = write!(s, "Content-Length: {n}\r\n");
        }
        if self.status == Status::MethodNotAllowed {
            let _ = write!(s, "Allow: {ALLOW}\r\n");
        }
        s.push_str("Connection: close\r\n\r\n");
        out.extend_from_slice(s.as_bytes());
    }
}

/// Where a [`ChunkedDecoder`] is inside the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk-size line: the size so far, digits seen, in extensions,
    /// after its `\r`.
    Size {
        size: u64,
        digits: bool,
        ext: bool,
        cr: bool,
    },
    /// `n` more data bytes of the current chunk.
    Data(u64),
    /// After a chunk's data: its `\r\n` (`cr`: the `\r` came).
    DataEnd { cr: bool },
    /// In the trailer section: the current line's length.
    Trailer { line: usize },
    /// The last chunk and the trailers are in.
    Done,
}

/// One step of [`ChunkedDecoder::next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Body bytes.
    Data(&'a [u8]),
    /// The input is used up; more is needed.
    Need,
    /// The body is complete; the rest of the input is not the body's.
    End,
}

/// Decodes a chunked body (RFC 9112 §7.1) from bytes split anywhere,
/// without copying data. Extensions and trailers are read and ignored,
/// within [`MAX_CHUNK_LINE`] and [`MAX_TRAILERS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Bytes of the current size line, or of the trailers.
    count: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub const fn new() -> Self {
        Self {
            state: Self::SIZE,
            count: 0,
        }
    }

    const SIZE: ChunkState = ChunkState::Size {
        size: 0,
        digits: false,
        ext: false,
        cr: false,
    };

    /// Whether the whole body is in.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes from the front of `input` up to the next piece of data or
    /// the end of the body.
    ///
    /// # Errors
    /// [`HeadError::Malformed`] for a bad size line or missing `\r\n`, and
    /// when a size line or the trailers exceed their bounds.
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Result<Chunk<'a>, HeadError> {
        loop {
            if self.state == ChunkState::Done {
                return Ok(Chunk::End);
            }
            if let ChunkState::Data(n) = self.state {
                if input.is_empty() {
                    return Ok(Chunk::Need);
                }
                let take = input.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                let (data, rest) = input.split_at(take);
                *input = rest;
                let left = n - take as u64;
                self.state = if left == 0 {
                    ChunkState::DataEnd { cr: false }
                } else {
                    ChunkState::Data(left)
                };
                return Ok(Chunk::Data(data));
            }
            let Some((&b, rest)) = input.split_first() else {
                return Ok(Chunk::Need);
            };
            *input = rest;
            self.step(b)?;
        }
    }

    /// One byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), HeadError> {
        const BAD: HeadError = HeadError::Malformed("bad chunk");
        self.state = match self.state {
            ChunkState::Size {
                size,
                digits,
                ext,
                cr,
            } => {
                self.count += 1;
                if self.count > MAX_CHUNK_LINE {
                    return Err(HeadError::Malformed("chunk-size line too long"));
                }
                match b {
                    b'\n' if digits => {
                        self.count = 0;
                        if size == 0 {
                            ChunkState::Trailer { line: 0 }
                        } else {
                            ChunkState::Data(size)
                        }
                    }
                    _ if cr => return Err(BAD),
                    b'\r' if digits => ChunkState::Size {
                        size,
                        digits,
                        ext,
                        cr: true,
                    },
                    _ if ext => {
                        if b < 0x20 && b != b'\t' {
                            return Err(BAD);
                        }
                        self.state
                    }
                    b';' | b' ' | b'\t' if digits => ChunkState::Size {
                        size,
                        digits,
                        ext: true,
                        cr,
                    },
                    _ => {
                        let d = char::from(b).to_digit(16).ok_or(BAD)?;
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .ok_or(HeadError::Malformed("chunk too large"))?;
                        ChunkState::Size {
                            size,
                            digits: true,
                            ext,
                            cr,
                        }
                    }
                }
            }
            ChunkState::DataEnd { cr } => match b {
                b'\r' if !cr => ChunkState::DataEnd { cr: true },
                b'\n' => Self::SIZE,
                _ => return Err(BAD),
            },
            ChunkState::Trailer { line } => {
                self.count += 1;
                if self.count > MAX_TRAILERS {
                    return Err(HeadError::Malformed("trailers too long"));
                }
                match b {
                    b'\n' if line == 0 => ChunkState::Done,
                    b'\n' => ChunkState::Trailer { line: 0 },
                    b'\r' => self.state,
                    _ => ChunkState::Trailer { line: line + 1 },
                }
            }
            // `next` handles both before calling.
            ChunkState::Data(_) | ChunkState::Done => self.state,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head(bytes: &[u8]) -> Result<Option<usize>, HeadError> {
        HeadBuffer::request().push(bytes)
    }

    #[test]
    fn a_head_ends_at_its_blank_line_crlf_or_lf() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        assert_eq!(head(req), Ok(Some(req.len() - 4)));
        assert_eq!(head(b"GET / HTTP/1.0\n\nx"), Ok(Some(16)));
        assert_eq!(head(b"GET / HTTP/1.0\r\nHost: a\r\n"), Ok(None));
        // Empty lines before a request are skipped, not before a response.
        let mut h = HeadBuffer::request();
        assert_eq!(h.push(b"\r\n\r\n\n"), Ok(None));
        assert_eq!(h.push(b"GET / HTTP/1.0\n\n"), Ok(Some(16)));
        assert_eq!(h.head(), b"GET / HTTP/1.0\n\n");
        assert_eq!(HeadBuffer::response().push(b"\r\n\r\n"), Ok(Some(4)));
    }

    #[test]
    fn bounds_give_414_then_431() {
        let mut long = b"GET /".to_vec();
        long.resize(MAX_REQUEST_LINE - 1, b'a');
        // Line plus terminator exactly at the bound: accepted.
        let mut ok = long.clone();
        ok.extend_from_slice(b"\n\n");
        assert_eq!(head(&ok), Ok(Some(MAX_REQUEST_LINE + 1)));
        long.push(b'a');
        assert_eq!(head(&long), Err(HeadError::LineTooLong));
        let mut big = b"GET / HTTP/1.0\r\n".to_vec();
        while big.len() < MAX_REQUEST_BYTES {
            big.extend_from_slice(b"X-A: b\r\n");
        }
        assert_eq!(head(&big), Err(HeadError::TooLarge));
        assert_eq!(HeadError::TooLarge.status().code(), 431);
        assert_eq!(HeadError::LineTooLong.status().code(), 414);
    }

    #[test]
    fn requests_parse_with_their_versions() {
        let r = Request::parse(b"GET /a%20b?x HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(
            (r.method, r.target, r.version, r.host),
            (Method::Get, "/a%20b?x", Version::Http11, Some("h"))
        );
        let r = Request::parse(b"HEAD / HTTP/1.0\n\n").unwrap();
        assert_eq!(
            (r.method, r.version, r.host),
            (Method::Head, Version::Http10, None)
        );
        let r = Request::parse(b"DELETE /x HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(r.method, Method::Other("DELETE"));
        assert_eq!(
            Request::parse(b"GET / HTTP/2.0\r\n\r\n"),
            Err(HeadError::Version)
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],          // no Host
            b"GET /  HTTP/1.0\r\n\r\n",              // two spaces
            b"GET /\r\n\r\n",                        // HTTP/0.9
            b"GET / HTTP/1.0\r\nHost : a\r\n\r\n",   // space before colon
            b"GET / HTTP/1.0\r\nA: b\r\n c\r\n\r\n", // folded
            b"GET / HTTP/1.0\r\nA: b\rc\r\n\r\n",    // bare CR
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            b"G@T / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/x.0\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert!(
                matches!(Request::parse(bad), Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut many = b"GET / HTTP/1.0\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"A: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(Request::parse(&many), Err(HeadError::TooLarge));
    }

    #[test]
    fn paths_are_percent_decoded_without_query() {
        assert_eq!(request_path("/a%20b%2Fc?q=1#f").unwrap(), "/a b/c");
        assert_eq!(request_path("http://h:7000/x").unwrap(), "/x");
        assert_eq!(request_path("HTTP://h").unwrap(), "/");
        assert_eq!(request_path("http://h?q=/x").unwrap(), "/");
        assert_eq!(request_path("https://h:1/a?b/c").unwrap(), "/a");
        assert_eq!(request_path("/%C3%A9").unwrap(), "/é");
        for bad in ["*", "x", "/%", "/%4", "/%zz", "/%ff"] {
            assert!(request_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        let mut s = String::new();
        percent_encode("a b/<é>:~", &mut s);
        assert_eq!(s, "a%20b%2F%3C%C3%A9%3E%3A~");
        assert_eq!(request_path(&format!("/{s}")).unwrap(), "/a b/<é>:~");
    }

    #[test]
    fn response_heads_are_exact() {
        let mut out = BytesMut::new();
        ResponseHead {
            status: Status::MethodNotAllowed,
            content_length: Some(3),
            content_type: "text/plain",
        }
        .emit(&mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n\
              Content-Length: 3\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn responses_parse_length_and_coding() {
        let r = Response::parse(b"HTTP/1.0 200 OK\r\nContent-Length: 12, 12\r\n\r\n").unwrap();
        assert_eq!(
            (r.status, r.reason, r.content_length),
            (200, "OK", Some(12))
        );
        let r = Response::parse(b"HTTP/1.1 404 Not Found\nTransfer-Encoding: gzip, chunked\n\n")
            .unwrap();
        assert_eq!((r.status, r.reason, r.chunked), (404, "Not Found", true));
        let r = Response::parse(b"HTTP/1.1 204\r\n\r\n").unwrap();
        assert!(r.is_bodiless());
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                Response::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Decodes `body` fed in pieces of `step` bytes; the body and what was
    /// left after its end.
    fn dechunk(body: &[u8], step: usize) -> Result<(Vec<u8>, usize), HeadError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for (i, piece) in body.chunks(step).enumerate() {
            let mut input = piece;
            loop {
                match d.next(&mut input)? {
                    Chunk::Data(b) => out.extend_from_slice(b),
                    Chunk::Need => break,
                    Chunk::End => {
                        return Ok((out, body.len() - i * step - (piece.len() - input.len())));
                    }
                }
            }
        }
        Err(HeadError::Malformed("incomplete"))
    }

    #[test]
    fn chunked_bodies_decode_split_anywhere() {
        let body = b"5;ext=1\r\nhello\r\nB\r\n 0123456789\r\n0\r\nX-T: y\r\n\r\nNEXT";
        for step in 1..body.len() {
            assert_eq!(
                dechunk(body, step),
                Ok((b"hello 0123456789".to_vec(), 4)),
                "{step}"
            );
        }
        assert_eq!(dechunk(b"3\nabc\n0\n\n", 1), Ok((b"abc".to_vec(), 0)));
        for bad in [
            &b"x\r\n"[..],
            b"3\r\nabcX\r\n",
            b"\r\n",
            b"11111111111111111\r\n",
            b"3\rX",
        ] {
            assert!(
                dechunk(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long = b"1;".to_vec();
        long.resize(MAX_CHUNK_LINE + 1, b'a');
        assert!(matches!(dechunk(&long, 7), Err(HeadError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn never_panics_and_splits_do_not_matter(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            cut in 0usize..600,
        ) {
            let whole = HeadBuffer::request().push(&bytes);
            let cut = cut.min(bytes.len());
            let mut split = HeadBuffer::request();
            let first = split.push(&bytes[..cut]);
            let joined = match first {
                Ok(None) => split.push(&bytes[cut..]).map(|n| n.map(|n| n + cut)),
                other => other,
            };
            prop_assert_eq!(whole, joined);
            let _ = Request::parse(&bytes);
            let _ = Response::parse(&bytes);
            if let Ok(s) = core::str::from_utf8(&bytes) {
                let _ = request_path(s);
            }
            let mut d = ChunkedDecoder::new();
            let mut input = &bytes[..];
            for _ in 0..=bytes.len() + 1 {
                match d.next(&mut input) {
                    Ok(Chunk::Data(_)) => {}
                    _ => break,
                }
            }
        }

        #[test]
        fn generated_requests_parse_back(
            path in "(/[a-zA-Z0-9 <>&\"é%]{0,20}){1,3}",
            v11 in any::<bool>(),
        ) {
            let mut target = String::new();
            for seg in path.split('/').skip(1) {
                target.push('/');
                percent_encode(seg, &mut target);
            }
            let version = if v11 { "1.1" } else { "1.0" };
            let req = format!("GET {target} HTTP/{version}\r\nHost: h\r\nAccept: */*\r\n\r\n");
            let mut h = HeadBuffer::request();
            for b in req.as_bytes() {
                if let Some(n) = h.push(&[*b]).unwrap() {
                    prop_assert_eq!(n, 1);
                }
            }
            let r = Request::parse(h.head()).unwrap();
            prop_assert_eq!(request_path(r.target).unwrap(), path);
        }
    }
}
