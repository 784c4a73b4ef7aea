//! `trainer fidelity`: how close a served student's answers are to a served teacher's, asked
//! of both services as a client would. For each sampled user it calls student-svc `Recommend`
//! and teacher-svc `Rank` (k items, the user's training items excluded on both sides) and
//! averages `core::fidelity` over the users. It then reads the student's own live figures
//! (`Info.fidelity`, from its `--shadow-teacher` path) so the two can be compared: with
//! `--shadow-fraction 1` and no other traffic, the shadow path measured exactly these queries.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rankdistill_core::fidelity::{FidelitySummary, QueryFidelity, interned};
use rankdistill_core::prepared::read_users;
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_proto::v1::{Query, RankRequest, RecommendRequest, StudentInfoRequest};
use serde::Serialize;
use tonic::transport::Channel;

/// What to measure.
#[derive(Debug, Clone)]
pub struct ServedFidelitySettings {
    /// Prepared dataset (its users.txt gives the users).
    pub data: PathBuf,
    /// student-svc endpoint.
    pub student: String,
    /// teacher-svc endpoint.
    pub teacher: String,
    /// Users to sample (all when `None`).
    pub users: Option<usize>,
    /// Seed of the user sample.
    pub seed: u64,
    /// Cut-off of the figures.
    pub k: usize,
    /// How long to wait for the student's shadow path to catch up with the queries sent.
    pub live_wait: Duration,
}

/// The student's live figures from `Info`.
#[derive(Debug, Clone, Serialize)]
pub struct LiveFidelity {
    /// The serving version.
    pub version: String,
    /// Queries the shadow path measured.
    pub queries: u64,
    /// Mean overlap@10.
    pub overlap: f64,
    /// Mean NDCG@10 against the teacher.
    pub ndcg: f64,
    /// Mean Kendall's tau.
    pub rank_correlation: f64,
    /// Shadow calls that failed.
    pub shadow_failed: u64,
    /// Sampled queries dropped (queue full).
    pub shadow_dropped: u64,
}

/// Both measurements.
#[derive(Debug, Clone, Serialize)]
pub struct ServedFidelity {
    /// Users asked.
    pub users: usize,
    /// Cut-off.
    pub k: usize,
    /// Figures computed here from both services' answers.
    pub client: FidelitySummary,
    /// The student's live figures (`None` when it does not shadow).
    pub live: Option<LiveFidelity>,
    /// Largest absolute difference between the client and live means (when both exist).
    pub max_difference: Option<f64>,
}

fn url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// The users of `settings` in the order they are asked.
fn sampled_users(settings: &ServedFidelitySettings) -> anyhow::Result<Vec<String>> {
    let mut users = read_users(&settings.data)?;
    anyhow::ensure!(
        !users.is_empty(),
        "{} lists no users",
        settings.data.join("users.txt").display()
    );
    if let Some(n) = settings.users {
        users.shuffle(&mut ChaCha8Rng::seed_from_u64(settings.seed));
        users.truncate(n);
    }
    Ok(users)
}

async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    let endpoint = url(endpoint);
    Channel::from_shared(endpoint.clone())
        .with_context(|| format!("invalid endpoint {endpoint}"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {endpoint}"))
}

fn ids(items: Vec<rankdistill_proto::v1::ScoredItem>) -> Vec<String> {
    items.into_iter().map(|i| i.item_id).collect()
}

/// Asks both services for every sampled user and reads the student's live figures.
pub fn measure(settings: &ServedFidelitySettings) -> anyhow::Result<ServedFidelity> {
    let users = sampled_users(settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut student = StudentServiceClient::new(connect(&settings.student).await?);
        let mut teacher = TeacherServiceClient::new(connect(&settings.teacher).await?);
        let mut client = FidelitySummary::default();
        for user in &users {
            let query = || {
                Some(Query {
                    user_id: user.clone(),
                    recent_items: vec![],
                })
            };
            let s = student
                .recommend(RecommendRequest {
                    query: query(),
                    k: settings.k as i32,
                    exclude_items: vec![],
                    exclude_seen: Some(true),
                })
                .await
                .with_context(|| format!("student-svc Recommend for user {user}"))?
                .into_inner();
            let t = teacher
                .rank(RankRequest {
                    query: query(),
                    k: settings.k as i32,
                    exclude_items: vec![],
                    exclude_seen: true,
                })
                .await
                .with_context(|| format!("teacher-svc Rank for user {user}"))?
                .into_inner();
            let (s, t) = interned(&ids(s.items), &ids(t.items));
            client.add(QueryFidelity::measure(&s, &t, settings.k));
        }
        // The shadow path is asynchronous: give it time to measure what was sent.
        let deadline = Instant::now() + settings.live_wait;
        let live = loop {
            let info = student.info(StudentInfoRequest {}).await?.into_inner();
            let version = info.model.map(|m| m.version).unwrap_or_default();
            let Some(f) = info.fidelity else {
                break None;
            };
            let done = f.queries + f.shadow_failed + f.shadow_dropped >= users.len() as u64;
            if done || Instant::now() >= deadline {
                break Some(LiveFidelity {
                    version,
                    queries: f.queries,
                    overlap: f.overlap_at_10,
                    ndcg: f.ndcg_at_10,
                    rank_correlation: f.rank_correlation,
                    shadow_failed: f.shadow_failed,
                    shadow_dropped: f.shadow_dropped,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let max_difference = live.as_ref().map(|l| {
            [
                (client.overlap - l.overlap).abs(),
                (client.ndcg - l.ndcg).abs(),
                (client.rank_correlation - l.rank_correlation).abs(),
            ]
            .into_iter()
            .fold(0.0, f64::max)
        });
        Ok(ServedFidelity {
            users: users.len(),
            k: settings.k,
            client,
            live,
            max_difference,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_a_scheme_are_plain_text() {
        assert_eq!(url("127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(url("https://a:1"), "https://a:1");
    }

    #[test]
    fn the_user_sample_is_seeded_and_sized() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.txt"), "a\nb\nc\nd\ne\n").unwrap();
        let settings = |users, seed| ServedFidelitySettings {
            data: dir.path().to_path_buf(),
            student: String::new(),
            teacher: String::new(),
            users,
            seed,
            k: 10,
            live_wait: Duration::ZERO,
        };
        assert_eq!(sampled_users(&settings(None, 0)).unwrap().len(), 5);
        let a = sampled_users(&settings(Some(3), 7)).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a, sampled_users(&settings(Some(3), 7)).unwrap());
    }
}
