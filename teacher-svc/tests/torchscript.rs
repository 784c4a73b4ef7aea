//! Serving a TorchScript teacher: a tiny MF traced from Rust with `CModule::create_by_tracing`
//! (no Python), saved to a `.pt` file with a sidecar, served by the binary; its rankings must
//! equal the module's own. Also: a sidecar for other data and a wrong output width are refused.

mod common;

use common::{Fixture, L, Server, args, assert_same_ranking, run_to_refusal};
use rankdistill_core::instances::{Instances, WindowConfig};
use rankdistill_proto::v1::{InfoRequest, Query, RankRequest, StreamRankingsRequest};
use tch::{CModule, Device, Kind, Tensor};

/// Traces `forward(users [B], sequences [B, L]) -> [B, items + extra]`: the user's embedding
/// plus the mean embedding of the input items, dotted with every item's embedding.
fn trace_mf(users: usize, items: usize, extra_outputs: usize) -> (CModule, Tensor, Tensor) {
    tch::manual_seed(9);
    let user_table = Tensor::randn([users as i64, 8], (Kind::Float, Device::Cpu));
    let item_table = Tensor::randn([(items + 1) as i64, 8], (Kind::Float, Device::Cpu));
    let output_table = item_table.narrow(0, 1, items as i64);
    let output_table = if extra_outputs > 0 {
        Tensor::cat(
            &[
                &output_table,
                &output_table.narrow(0, 0, extra_outputs as i64),
            ],
            0,
        )
    } else {
        output_table
    };
    let (u, i, o) = (
        user_table.shallow_clone(),
        item_table.shallow_clone(),
        output_table.shallow_clone(),
    );
    let mut forward = move |inputs: &[Tensor]| {
        let user = Tensor::embedding(&u, &inputs[0], -1, false, false);
        let history =
            Tensor::embedding(&i, &inputs[1], 0, false, false).mean_dim(1, false, Kind::Float);
        vec![(user + history).matmul(&o.tr())]
    };
    let example = [
        Tensor::from_slice(&[0i64, 1]),
        Tensor::from_slice(&[0i64, 0, 1, 2, 3, 4, 5, 6, 7, 8]).view([2, L as i64]),
    ];
    let module =
        CModule::create_by_tracing("TinyMf", "forward", &example, &mut forward).expect("trace");
    (module, user_table, item_table)
}

/// The module's own top-k for one query, with exclusions.
fn expected(
    module: &CModule,
    user: u32,
    inputs: &[u32],
    exclude: &[u32],
    k: usize,
    fx: &Fixture,
) -> Vec<(String, f32)> {
    let users = Tensor::from_slice(&[user as i64]);
    let seq: Vec<i64> = inputs.iter().map(|&i| i as i64).collect();
    let seq = Tensor::from_slice(&seq).view([1, L as i64]);
    let scores = module.forward_ts(&[users, seq]).expect("forward");
    let scores: Vec<f32> = Vec::try_from(scores.view([-1])).expect("scores");
    let mut order: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|(i, _)| !exclude.contains(&(*i as u32)))
        .map(|(i, &s)| (i as u32, s))
        .collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    order
        .into_iter()
        .take(k)
        .map(|(i, s)| (fx.item(i), s))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_torchscript_teacher_is_served() {
    let fx = Fixture::new();
    let (users, items) = (fx.dataset.num_users(), fx.dataset.num_items());
    let (module, _, _) = trace_mf(users, items, 0);
    let path = fx.root.join("teacher.pt");
    module.save(&path).unwrap();
    std::fs::write(
        fx.root.join("teacher.pt.json"),
        serde_json::json!({
            "data_fingerprint": fx.dataset.manifest.fingerprint,
            "dim": 8,
        })
        .to_string(),
    )
    .unwrap();
    let module = CModule::load(&path).unwrap();

    let server = Server::start_serving(&args(&fx.data, &path)).await;
    let mut client = server.client().await;
    let info = client.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.model_kind, "torchscript");
    assert_eq!(info.num_items as usize, items);
    assert_eq!(info.sequence_length as usize, L);
    assert_eq!(info.dim, 8);
    assert_eq!(info.version.len(), 16);
    assert_eq!(info.data_fingerprint, fx.dataset.manifest.fingerprint);

    let k = 10;
    for user in [0u32, 7] {
        let recent = vec![fx.item(3), fx.item(1), fx.item(4)];
        let ranked: Vec<(String, f32)> = client
            .rank(RankRequest {
                query: Some(Query {
                    user_id: fx.user(user),
                    recent_items: recent,
                }),
                k: k as i32,
                exclude_items: vec![fx.item(0)],
                exclude_seen: false,
            })
            .await
            .unwrap()
            .into_inner()
            .items
            .into_iter()
            .map(|item| (item.item_id, item.score))
            .collect();
        let want = expected(&module, user, &[0, 0, 4, 2, 5], &[0], k, &fx);
        assert_same_ranking(&ranked, &want, &format!("user {user}"));
    }

    // The training-query stream uses the same module, targets excluded.
    let instances = Instances::build(
        &fx.dataset.split.train,
        WindowConfig {
            sequence_length: L,
            target_length: 1,
            ..Default::default()
        },
    );
    let request = StreamRankingsRequest {
        k: k as i32,
        batch_size: 16,
        ..Default::default()
    };
    let mut stream = client.stream_rankings(request).await.unwrap().into_inner();
    let batch = stream.message().await.unwrap().expect("a first batch");
    assert_eq!(batch.total_queries, instances.len() as u64);
    for r in &batch.rankings {
        let i = r.query_index as usize;
        let want = expected(
            &module,
            instances.users[i],
            instances.input(i),
            instances.target(i),
            k,
            &fx,
        );
        let got: Vec<(String, f32)> = r
            .items
            .iter()
            .map(|&item| fx.item(item))
            .zip(r.scores.iter().copied())
            .collect();
        assert_same_ranking(&got, &want, &format!("stream query {i}"));
    }
}

#[test]
fn torchscript_for_other_data_or_of_the_wrong_width_is_refused() {
    let fx = Fixture::new();
    let (users, items) = (fx.dataset.num_users(), fx.dataset.num_items());

    let (module, _, _) = trace_mf(users, items, 0);
    let other = fx.root.join("other.pt");
    module.save(&other).unwrap();
    std::fs::write(
        fx.root.join("other.pt.json"),
        r#"{"data_fingerprint": "feedfacefeedface"}"#,
    )
    .unwrap();
    let (status, stderr) = run_to_refusal(&args(&fx.data, &other));
    assert!(!status.success());
    assert!(stderr.contains("feedfacefeedface"), "{stderr}");

    let (wide, _, _) = trace_mf(users, items, 3);
    let path = fx.root.join("wide.pt");
    wide.save(&path).unwrap();
    let (status, stderr) = run_to_refusal(&args(&fx.data, &path));
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("expected [1, {items}]")),
        "{stderr}"
    );
}
