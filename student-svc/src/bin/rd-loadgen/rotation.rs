//! Client-side balancing over several replicas, the way a Kubernetes Service uses readiness:
//! one health watcher per endpoint polls `grpc.health.v1.Health/Check` for the service and
//! keeps the endpoint in rotation only while it answers SERVING. A replica that starts
//! draining (health NOT_SERVING while it still answers for `--drain-delay-ms`) leaves the
//! rotation before it stops accepting, so no request is sent to a closed server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Which endpoints may take requests now.
#[derive(Debug)]
pub struct Rotation {
    serving: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Rotation {
    /// A rotation over `n` endpoints, all in (`in_rotation`) or all out until checked.
    pub fn new(n: usize, in_rotation: bool) -> Self {
        Self {
            serving: (0..n).map(|_| AtomicBool::new(in_rotation)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Marks endpoint `i` in or out of rotation.
    pub fn set(&self, i: usize, serving: bool) {
        self.serving[i].store(serving, Ordering::Relaxed);
    }

    /// The next endpoint in rotation (round robin), or `None` when none is serving.
    pub fn pick(&self) -> Option<usize> {
        let n = self.serving.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|offset| (start + offset) % n)
            .find(|&i| self.serving[i].load(Ordering::Relaxed))
    }
}

/// Polls endpoint `i`'s health for `service` every `interval` until the process ends; a
/// check that fails or takes longer than `interval` takes the endpoint out of rotation.
pub async fn watch(
    rotation: Arc<Rotation>,
    i: usize,
    channel: Channel,
    service: &'static str,
    interval: Duration,
) {
    let mut client = HealthClient::new(channel);
    loop {
        let request = HealthCheckRequest {
            service: service.to_string(),
        };
        let serving = matches!(
            tokio::time::timeout(interval, client.check(request)).await,
            Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32
        );
        rotation.set(i, serving);
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_round_robin_over_the_serving_endpoints_only() {
        let rotation = Rotation::new(3, true);
        let picks: Vec<_> = (0..6).map(|_| rotation.pick().unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        rotation.set(1, false);
        let picks: Vec<_> = (0..4).map(|_| rotation.pick().unwrap()).collect();
        assert!(picks.iter().all(|&i| i != 1), "{picks:?}");
        assert!(picks.contains(&0) && picks.contains(&2), "{picks:?}");
    }

    #[test]
    fn no_endpoint_serving_gives_none() {
        let rotation = Rotation::new(2, false);
        assert_eq!(rotation.pick(), None);
        rotation.set(1, true);
        assert_eq!(rotation.pick(), Some(1));
    }
}
