//! Access to the admin RPC (`Reload`). It is off unless configured: `--enable-admin` opens it,
//! `--admin-token` / `--admin-token-file` open it to callers that send
//! `authorization: Bearer <token>` (compared in constant time). The gate wraps the generated
//! service and answers a refused call itself, before any handler runs; other methods pass
//! through untouched. The token never appears in a log line, an error or a `Debug` output.

use std::convert::Infallible;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;
use tracing::warn;

/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest admin token accepted (it travels in a header).
pub const MAX_TOKEN_LEN: usize = 4096;

/// A secret string: `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value from the command line or the environment. Never fails, so clap never
    /// echoes the value in an error; `AdminAccess::from_config` checks it.
    pub fn parse(value: &str) -> Result<Secret, String> {
        Ok(Secret(value.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Who may call the admin RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAccess {
    /// Nobody: the RPC answers PERMISSION_DENIED.
    Disabled,
    /// Everybody who reaches the port (`--enable-admin` without a token).
    Open,
    /// Callers presenting this bearer token.
    Token(Secret),
}

/// The message of a call to a disabled admin RPC: says which flags enable it.
pub const DISABLED_MESSAGE: &str = "the Reload RPC is disabled on this server: start student-svc with --admin-token-file FILE (or --admin-token; callers then send the metadata `authorization: Bearer <token>`) or with --enable-admin (no credentials); the artifact watch and SIGHUP reload without it";

impl AdminAccess {
    /// The access the flags ask for (`--enable-admin`, `--admin-token`,
    /// `--admin-token-file`). Reads the token file; refuses a token that is too short, too
    /// long or not visible ASCII (without echoing it).
    pub fn from_flags(
        enable_admin: bool,
        token: Option<&Secret>,
        token_file: Option<&Path>,
    ) -> Result<AdminAccess, String> {
        let token = match (token, token_file) {
            (Some(token), _) => Some(check_token(token.expose(), "--admin-token")?),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "--admin-token-file {}: cannot read the file: {e}",
                        path.display()
                    )
                })?;
                let text = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .unwrap_or(&text);
                let what = format!("--admin-token-file {}", path.display());
                Some(check_token(text, &what)?)
            }
            (None, None) => None,
        };
        Ok(match token {
            Some(token) => AdminAccess::Token(token),
            None if enable_admin => AdminAccess::Open,
            None => AdminAccess::Disabled,
        })
    }

    /// One word for logs.
    pub fn describe(&self) -> &'static str {
        match self {
            AdminAccess::Disabled => "disabled",
            AdminAccess::Open => "open (no credentials)",
            AdminAccess::Token(_) => "bearer token",
        }
    }

    /// Checks a call's headers; the error is the status to answer.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<(), Status> {
        let expected = match self {
            AdminAccess::Disabled => return Err(Status::permission_denied(DISABLED_MESSAGE)),
            AdminAccess::Open => return Ok(()),
            AdminAccess::Token(token) => token.expose().as_bytes(),
        };
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Err(Status::unauthenticated(
                "Reload needs the metadata `authorization: Bearer <token>` with the server's admin token",
            ));
        };
        let presented = value
            .as_bytes()
            .split_at_checked(7)
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|(_, token)| token.trim_ascii());
        let Some(presented) = presented else {
            return Err(Status::unauthenticated(
                "the authorization metadata must read `Bearer <token>`",
            ));
        };
        if constant_time_eq(presented, expected) {
            Ok(())
        } else {
            Err(Status::permission_denied("the admin token is not valid"))
        }
    }
}

fn check_token(token: &str, what: &str) -> Result<Secret, String> {
    let len = token.len();
    if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&len) {
        return Err(format!(
            "{what}: the admin token must have {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters, it has {len}"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{what}: the admin token must be visible ASCII characters (no spaces or control characters)"
        ));
    }
    Ok(Secret(token.into()))
}

/// Equality whose running time depends on the lengths only, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

/// Wraps the generated StudentService: admin methods are checked against `AdminAccess`,
/// the others pass through. (The serving layer around it counts refused calls.)
#[derive(Debug, Clone)]
pub struct AdminGate<S> {
    inner: S,
    access: Arc<AdminAccess>,
    reload_path: Arc<str>,
}

impl<S: NamedService> AdminGate<S> {
    /// Gates `inner`'s `Reload` method.
    pub fn new(inner: S, access: AdminAccess) -> AdminGate<S> {
        AdminGate {
            inner,
            access: Arc::new(access),
            reload_path: format!("/{}/Reload", S::NAME).into(),
        }
    }
}

impl<S: NamedService> NamedService for AdminGate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for AdminGate<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<http::Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() == &*self.reload_path
            && let Err(status) = self.access.check(request.headers())
        {
            warn!(
                method = "Reload",
                code = ?status.code(),
                reason = status.message(),
                "admin call refused"
            );
            return Either::Left(ready(Ok(status.into_http())));
        }
        Either::Right(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn refusal_code(access: &AdminAccess, headers: &http::HeaderMap) -> Option<Code> {
        access.check(headers).err().map(|s| s.code())
    }

    fn headers(authorization: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(value) = authorization {
            h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        }
        h
    }

    const TOKEN: &str = "s3cr3t-token-0123456789";

    #[test]
    fn the_token_is_required_and_compared_exactly() {
        let access = AdminAccess::Token(Secret(TOKEN.into()));
        let code = |a: Option<&str>| refusal_code(&access, &headers(a));
        assert_eq!(code(Some(&format!("Bearer {TOKEN}"))), None);
        assert_eq!(code(Some(&format!("bearer  {TOKEN} "))), None);
        assert_eq!(code(None), Some(Code::Unauthenticated));
        assert_eq!(code(Some(TOKEN)), Some(Code::Unauthenticated));
        assert_eq!(
            code(Some(&format!("Basic {TOKEN}"))),
            Some(Code::Unauthenticated)
        );
        assert_eq!(
            code(Some(&format!("Bearer {TOKEN}x"))),
            Some(Code::PermissionDenied)
        );
        assert_eq!(
            code(Some(&format!("Bearer {}", &TOKEN[1..]))),
            Some(Code::PermissionDenied)
        );
        assert_eq!(code(Some("Bearer ")), Some(Code::PermissionDenied));
    }

    #[test]
    fn disabled_names_the_flags_and_open_lets_everyone_in() {
        let status = AdminAccess::Disabled.check(&headers(None)).unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(status.message().contains("--admin-token-file"));
        assert!(status.message().contains("--enable-admin"));
        assert!(AdminAccess::Open.check(&headers(None)).is_ok());
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"\0", b""));
    }

    #[test]
    fn tokens_are_checked_without_being_echoed() {
        let secret = "short";
        let e = check_token(secret, "--admin-token").unwrap_err();
        assert!(e.contains("16 to 4096 characters, it has 5"), "{e}");
        assert!(!e.contains(secret));
        let e = check_token("with a space 0123456789", "--admin-token").unwrap_err();
        assert!(e.contains("visible ASCII"), "{e}");
        assert!(!e.contains("with a space"));
        assert_eq!(format!("{:?}", Secret(TOKEN.into())), "Secret(<redacted>)");
        assert!(!format!("{:?}", AdminAccess::Token(Secret(TOKEN.into()))).contains(TOKEN));
    }
}
