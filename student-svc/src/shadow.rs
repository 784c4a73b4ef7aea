//! Live fidelity: a sampled fraction of Recommend queries re-asked of teacher-svc, never on
//! the request's path. The handler only offers the query with the version's answer
//! ([`ShadowQueue::offer`]: a sampler draw, then a non-blocking `try_send` into a bounded
//! queue; a full queue drops the query and counts it). A background worker takes queued
//! queries, asks the teacher's `Rank` (at most `concurrency` calls at once, each bounded by
//! the timeout) and records `QueryFidelity::measure(student, teacher, 10)` into the version's
//! figures; an error, a timeout or an unreachable teacher counts as failed.
//!
//! Like for like: the teacher gets the same user, recent items and k as the student answered,
//! and the same exclusions. student-svc's `exclude_seen` (on by default) removes the user's
//! training items and the query's recent items; teacher-svc's removes the training items
//! only, so the recent items travel in the teacher's `exclude_items`. Both answer raw item
//! ids from the dataset's id map; the lists are compared by id (`core::fidelity::interned`), so no dense
//! index of either side is assumed. Only model answers for known users with at least 10
//! items are sampled: the teacher refuses unknown users, the popularity fallback is not the
//! model, and a shorter list has no overlap@10.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rankdistill_core::fidelity::{QueryFidelity, interned};
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_proto::v1::{Query, RankRequest};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tracing::{info, warn};

use crate::catalog::RecommendSpec;
use crate::sampler::Sampler;
use crate::version_stats::VersionStats;

/// The fidelity cut-off: figures are overlap@10, NDCG@10 and tau over the top 10.
pub const FIDELITY_K: usize = 10;

/// The shadow settings (`--shadow-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSettings {
    /// teacher-svc's endpoint, `http://HOST:PORT`.
    pub teacher: String,
    /// Share of the eligible queries re-asked, in [0, 1].
    pub fraction: f64,
    /// Queries waiting for the teacher at most; more are dropped.
    pub queue: usize,
    /// Longest a teacher call may take.
    pub timeout: Duration,
    /// Teacher calls in flight at most.
    pub concurrency: usize,
    /// The sampler's seed.
    pub seed: u64,
}

/// One query to re-ask: what the student was asked and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowJob {
    /// The query as the student resolved it (raw ids).
    pub spec: RecommendSpec,
    /// The student's answer, raw item ids best first (its length is the k asked of the
    /// teacher).
    pub student: Vec<String>,
}

/// The teacher's request for a shadow query: same query and k, same exclusions.
impl From<&ShadowJob> for RankRequest {
    fn from(job: &ShadowJob) -> RankRequest {
        let spec = &job.spec;
        let mut exclude_items = spec.exclude_items.clone();
        if spec.exclude_seen {
            exclude_items.extend(spec.recent_items.iter().cloned());
        }
        RankRequest {
            query: Some(Query {
                user_id: spec.user_id.clone(),
                recent_items: spec.recent_items.clone(),
            }),
            k: job.student.len().max(FIDELITY_K) as i32,
            exclude_items,
            exclude_seen: spec.exclude_seen,
        }
    }
}

/// A queued shadow query and the figures it will count in.
#[derive(Debug)]
struct Queued {
    job: ShadowJob,
    stats: Arc<VersionStats>,
}

/// What became of an offered query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The sampler passed it over.
    NotSampled,
    /// Queued for the teacher.
    Queued,
    /// Sampled, but the queue was full (or the worker gone): counted as dropped.
    Dropped,
}

/// The handlers' side of shadowing: the sampler and the queue's sending end.
#[derive(Debug, Clone)]
pub struct ShadowQueue {
    sampler: Arc<Sampler>,
    sender: mpsc::Sender<Queued>,
}

impl ShadowQueue {
    /// Offers a query the version answered (`job` is built only when it is sampled). Never
    /// waits.
    pub fn offer(&self, stats: &Arc<VersionStats>, job: impl FnOnce() -> ShadowJob) -> Offer {
        if !self.sampler.draw() {
            return Offer::NotSampled;
        }
        let queued = Queued {
            job: job(),
            stats: stats.clone(),
        };
        match self.sender.try_send(queued) {
            Ok(()) => Offer::Queued,
            Err(_) => {
                stats.record_dropped();
                Offer::Dropped
            }
        }
    }
}

/// A queue of `capacity` and its receiving end (for the worker, or a test).
fn queue(sampler: Sampler, capacity: usize) -> (ShadowQueue, mpsc::Receiver<Queued>) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    (
        ShadowQueue {
            sampler: Arc::new(sampler),
            sender,
        },
        receiver,
    )
}

/// The teacher's endpoint, checked: `http://HOST:PORT` (plain text).
pub fn teacher_endpoint(url: &str, timeout: Duration) -> Result<Endpoint, String> {
    if !url.starts_with("http://") {
        return Err(format!(
            "--shadow-teacher {url}: give a plain-text endpoint http://HOST:PORT (TLS to the teacher is not supported)"
        ));
    }
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("--shadow-teacher {url}: not a valid endpoint: {e}"))?;
    Ok(endpoint.connect_timeout(timeout).tcp_nodelay(true))
}

/// Starts shadowing: the queue and its worker, which stops with `stop`. The teacher is
/// connected lazily (a teacher that is down only makes shadow calls fail).
///
/// The worker runs on its own OS thread ("shadow", a single-threaded runtime) at the lowest
/// CPU priority (SCHED_IDLE, else nice 19), not on the serving runtime: its gRPC calls, decoding and fidelity
/// arithmetic then take CPU only when the request path leaves some, so shadowing does not
/// delay requests; when the core is saturated the queue fills and samples are dropped
/// (counted) instead.
pub fn start(settings: &ShadowSettings, stop: CancellationToken) -> Result<ShadowQueue, String> {
    let endpoint = teacher_endpoint(&settings.teacher, settings.timeout)?;
    let (shadow, jobs) = queue(
        Sampler::new(settings.fraction, settings.seed),
        settings.queue,
    );
    info!(
        teacher = %settings.teacher,
        fraction = settings.fraction,
        queue = settings.queue,
        timeout_ms = settings.timeout.as_millis() as u64,
        "shadowing a sample of Recommend queries to the teacher"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the shadow worker's runtime: {e}"))?;
    let (timeout, concurrency) = (settings.timeout, settings.concurrency.max(1));
    std::thread::Builder::new()
        .name("shadow".into())
        .spawn(move || {
            lowest_priority();
            runtime.block_on(async move {
                // Created on this runtime: the channel's connection tasks run here too.
                let client = TeacherServiceClient::new(endpoint.connect_lazy());
                work(jobs, client, timeout, concurrency, stop).await
            })
        })
        .map_err(|e| format!("cannot start the shadow worker's thread: {e}"))?;
    Ok(shadow)
}

/// Gives the calling thread the lowest CPU priority: Linux's SCHED_IDLE policy (it runs only
/// on a core nothing else wants), else nice 19. Failure (a sandbox that forbids both) only
/// leaves the thread at normal priority.
fn lowest_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` (valid for the call); pid 0 is this thread.
    let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
    // SAFETY: setpriority only reads its integer arguments; `who` = 0 is the calling thread.
    if !idle && unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot lower the shadow worker's priority; it runs at normal priority"
        );
    }
}

/// The worker: asks the teacher for each queued query, `concurrency` at once.
async fn work(
    mut jobs: mpsc::Receiver<Queued>,
    client: TeacherServiceClient<Channel>,
    timeout: Duration,
    concurrency: usize,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let failing = Arc::new(AtomicBool::new(false));
    loop {
        let queued = tokio::select! {
            _ = stop.cancelled() => return,
            queued = jobs.recv() => match queued {
                Some(queued) => queued,
                None => return,
            },
        };
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let client = client.clone();
        let failing = failing.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match ask(client, &queued.job, timeout).await {
                Ok(teacher) => {
                    let (student, teacher) = interned(&queued.job.student, &teacher);
                    queued
                        .stats
                        .record_ok(QueryFidelity::measure(&student, &teacher, FIDELITY_K));
                    if failing.swap(false, Ordering::Relaxed) {
                        info!("shadow calls to the teacher succeed again");
                    }
                }
                Err(reason) => {
                    queued.stats.record_failed();
                    if !failing.swap(true, Ordering::Relaxed) {
                        warn!(%reason, "shadow call to the teacher failed (counted in student_shadow_calls_total{{outcome=\"failed\"}}; logged once until one succeeds)");
                    }
                }
            }
        });
    }
}

/// One teacher call: its item ids best first.
async fn ask(
    mut client: TeacherServiceClient<Channel>,
    job: &ShadowJob,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let mut request = tonic::Request::new(RankRequest::from(job));
    request.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.rank(request)).await {
        Ok(Ok(answer)) => Ok(answer
            .into_inner()
            .items
            .into_iter()
            .map(|item| item.item_id)
            .collect()),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Err(_) => Err(format!(
            "no answer within {} ms (--shadow-timeout-ms)",
            timeout.as_millis()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(k: usize, exclude_seen: bool) -> ShadowJob {
        ShadowJob {
            spec: RecommendSpec {
                user_id: "u1".into(),
                recent_items: vec!["a".into(), "b".into()],
                exclude_items: vec!["x".into()],
                exclude_seen,
            },
            student: (0..k).map(|i| format!("i{i}")).collect(),
        }
    }

    #[test]
    fn the_teacher_gets_the_same_query_k_and_exclusions() {
        let r = RankRequest::from(&job(12, true));
        assert_eq!(r.k, 12);
        let q = r.query.unwrap();
        assert_eq!((q.user_id.as_str(), q.recent_items.len()), ("u1", 2));
        assert!(r.exclude_seen);
        assert_eq!(r.exclude_items, vec!["x", "a", "b"]);
        let r = RankRequest::from(&job(10, false));
        assert!(!r.exclude_seen);
        assert_eq!(r.exclude_items, vec!["x"]);
        assert_eq!(RankRequest::from(&job(3, true)).k, 10);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let stats = Arc::new(VersionStats::new("v", None));
        let (shadow, mut jobs) = queue(Sampler::new(1.0, 0), 2);
        let offers: Vec<Offer> = (0..5)
            .map(|_| shadow.offer(&stats, || job(10, true)))
            .collect();
        use Offer::*;
        assert_eq!(offers, vec![Queued, Queued, Dropped, Dropped, Dropped]);
        assert_eq!(stats.fidelity().dropped, 3);
        // One taken off: room for one more.
        assert!(jobs.recv().await.is_some());
        assert_eq!(shadow.offer(&stats, || job(10, true)), Queued);
        // The worker gone: dropped too.
        drop(jobs);
        assert_eq!(shadow.offer(&stats, || job(10, true)), Dropped);
        assert_eq!(stats.fidelity().dropped, 4);
        let never = queue(Sampler::new(0.0, 0), 2).0;
        let mut built = false;
        let offer = never.offer(&stats, || {
            built = true;
            job(10, true)
        });
        assert_eq!((offer, built), (NotSampled, false));
    }

    #[test]
    fn only_plain_text_endpoints_are_accepted() {
        let t = Duration::from_millis(5);
        assert!(teacher_endpoint("http://127.0.0.1:50051", t).is_ok());
        let e = teacher_endpoint("https://teacher:50051", t).unwrap_err();
        assert!(e.contains("plain-text"), "{e}");
        assert!(teacher_endpoint("127.0.0.1:50051", t).is_err());
        assert!(teacher_endpoint("http://bad host", t).is_err());
    }
}
