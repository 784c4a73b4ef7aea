//! The per-RPC layer: every call of a wrapped service gets a span (`rpc`, with the method
//! and the caller's W3C `traceparent`), its deadline (`grpc-timeout`: past it the call is
//! answered DEADLINE_EXCEEDED and the handler's future dropped; handlers read it with
//! [`Deadline::of`](crate::deadline::Deadline::of)), a log line when it fails, and the base
//! metrics by method and final status code. A server stream is measured to its end: its
//! code is the one in its trailers, or CANCELLED when the client goes away first. Handlers
//! keep none of this.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;
use tonic::{Code, Status};
use tower_layer::Layer;
use tracing::{Instrument, Span, debug, info_span, warn};

use crate::deadline::{Deadline, grpc_timeout_header};
use crate::metrics::RpcMetrics;

/// A server-side bound on one method's duration, whatever the caller's deadline (e.g.
/// `Reload`, whose callers often set none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodLimit {
    /// The method, e.g. `Reload`.
    pub method: &'static str,
    /// The longest the call may take.
    pub max: Duration,
    /// The flag that sets it, named in the DEADLINE_EXCEEDED message.
    pub flag: &'static str,
}

/// Wraps a generated service in [`Rpc`].
#[derive(Debug, Clone)]
pub struct RpcLayer {
    metrics: RpcMetrics,
    limits: Arc<[MethodLimit]>,
}

impl RpcLayer {
    /// A layer recording into `metrics`, bounding the methods in `limits`.
    pub fn new(metrics: RpcMetrics, limits: &[MethodLimit]) -> RpcLayer {
        RpcLayer {
            metrics,
            limits: limits.into(),
        }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = Rpc<S>;

    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc {
            inner,
            metrics: self.metrics.clone(),
            limits: self.limits.clone(),
        }
    }
}

/// A service with the per-RPC span, deadline, log and metrics (see the module doc).
#[derive(Debug, Clone)]
pub struct Rpc<S> {
    inner: S,
    metrics: RpcMetrics,
    limits: Arc<[MethodLimit]>,
}

impl<S: NamedService> NamedService for Rpc<S> {
    const NAME: &'static str = S::NAME;
}

/// The method of a gRPC path (`/package.Service/Method`).
fn method_of(path: &str) -> Arc<str> {
    path.rsplit('/').next().unwrap_or(path).into()
}

impl<S> Service<http::Request<Body>> for Rpc<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let started = Instant::now();
        let method = method_of(request.uri().path());
        let span = info_span!(
            "rpc",
            method = &*method,
            traceparent = tracing::field::Empty
        );
        if let Some(traceparent) = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
        {
            span.record("traceparent", traceparent);
        }
        let caller = grpc_timeout_header(request.headers()).and_then(|t| started.checked_add(t));
        let limit = self
            .limits
            .iter()
            .find(|limit| *limit.method == *method)
            .and_then(|limit| Some((started.checked_add(limit.max)?, *limit)));
        // The server's limit applies when it comes first; its message names its flag.
        let (deadline, by_server) = match (caller, limit) {
            (Some(caller), Some((server, limit))) if server < caller => (Some(server), Some(limit)),
            (None, Some((server, limit))) => (Some(server), Some(limit)),
            (caller, _) => (caller, None),
        };
        if let Some(deadline) = deadline {
            request.extensions_mut().insert(Deadline(deadline));
        }
        let answer = self.inner.call(request).instrument(span.clone());
        let call = Call {
            method,
            started,
            metrics: self.metrics.clone(),
            span,
        };
        Box::pin(async move {
            let answered = match deadline {
                None => Some(answer.await),
                Some(deadline) => tokio::time::timeout_at(deadline.into(), answer).await.ok(),
            };
            let response = match answered {
                Some(Ok(response)) => response,
                Some(Err(never)) => match never {},
                None => Status::deadline_exceeded(match by_server {
                    Some(limit) => format!(
                        "{} took longer than the server allows ({} {} ms); the work was dropped",
                        limit.method,
                        limit.flag,
                        limit.max.as_millis()
                    ),
                    None => Deadline::exceeded_message(started.elapsed()),
                })
                .into_http(),
            };
            // An error answered at once (trailers-only) carries its status in the headers.
            if let Some(status) = Status::from_header_map(response.headers()) {
                call.finish(&status);
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(Observed {
                    body,
                    call: Some(call),
                })
            }))
        })
    }
}

/// What the layer knows of a call until its end.
struct Call {
    method: Arc<str>,
    started: Instant,
    metrics: RpcMetrics,
    span: Span,
}

impl Call {
    fn finish(self, status: &Status) {
        let code = status.code();
        self.metrics
            .observe(&self.method, code, self.started.elapsed());
        let _entered = self.span.enter();
        let method = &*self.method;
        match code {
            Code::Ok => {}
            Code::Internal | Code::Unknown => {
                warn!(method, error = status.message(), "request failed")
            }
            code => debug!(method, code = ?code, error = status.message(), "request refused"),
        }
    }
}

/// A response body that reports the call's final status when its trailers pass, or
/// CANCELLED when it is dropped before (the client went away).
struct Observed {
    body: Body,
    call: Option<Call>,
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let status = Status::from_header_map(trailers)
                        .unwrap_or_else(|| Status::unknown("trailers without grpc-status"));
                    if let Some(call) = self.call.take() {
                        call.finish(&status);
                    }
                }
            }
            Poll::Ready(Some(Err(status))) => {
                if let Some(call) = self.call.take() {
                    call.finish(status);
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.take() {
                    call.finish(&Status::unknown("the response ended without trailers"));
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(&Status::cancelled("the client went away"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_the_last_path_segment() {
        assert_eq!(&*method_of("/rankdistill.v1.TeacherService/Rank"), "Rank");
        assert_eq!(&*method_of("Rank"), "Rank");
    }
}
