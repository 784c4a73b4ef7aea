//! The bad-input matrix of student-svc, table-driven against the real binary: every RPC with
//! unknown ids, k out of range, empty, over-long and duplicated lists, oversized ids and
//! messages above the 4 MiB decode limit; and every way an artifact can be broken (wrong shape,
//! missing or extra tensor, wrong dtype, truncated or empty weights, NaN and infinite weights,
//! damaged manifest), both at start-up (`--model`) and on a hot reload. Each row names the
//! status (or exit and stderr) it must get and the words that say what to fix; the server
//! must never panic and keeps serving after every refused reload.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Fixture, Server, Student, args, write_artifact};
use rankdistill_core::artifact::{MANIFEST_FILE, WEIGHTS_FILE, weights_version};
use rankdistill_core::atomic::replace_dir_atomic;
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use rankdistill_proto::v1::{Query, RecommendBatchRequest, RecommendRequest, StudentInfoRequest};
use rankdistill_testkit::table::{
    BadIds, Expect, Row, assert_no_failures, error, missing, run_rpc_rows,
};
use rankdistill_testkit::{Service, weights};
use safetensors::Dtype;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

/// The server's `--max-k` and `--max-batch` in these tests.
const MAX_K: i32 = 50;
const MAX_BATCH: usize = 4;

fn recommend(user: &str, recent: &[String], k: i32) -> RecommendRequest {
    RecommendRequest {
        query: Some(Query {
            user_id: user.to_string(),
            recent_items: recent.to_vec(),
        }),
        k,
        exclude_items: vec![],
        exclude_seen: None,
    }
}

enum Call {
    Recommend(RecommendRequest),
    Batch(RecommendBatchRequest),
    Info,
}

/// Runs a call; on success returns the ranked item ids of each answer.
async fn run(
    mut client: StudentServiceClient<Channel>,
    call: Call,
) -> Result<Vec<Vec<String>>, tonic::Status> {
    let ids = |r: &rankdistill_proto::v1::RecommendResponse| {
        r.items
            .iter()
            .map(|i| i.item_id.clone())
            .collect::<Vec<_>>()
    };
    match call {
        Call::Recommend(r) => Ok(vec![ids(&client.recommend(r).await?.into_inner())]),
        Call::Batch(b) => Ok(client
            .recommend_batch(b)
            .await?
            .into_inner()
            .responses
            .iter()
            .map(ids)
            .collect()),
        Call::Info => {
            let info = client.info(StudentInfoRequest {}).await?.into_inner();
            Ok(vec![vec![
                info.model.map(|m| m.version).unwrap_or_default(),
            ]])
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_bad_input_with_a_precise_status() {
    let fx = Fixture::new();
    let data = fx.data.to_string_lossy().into_owned();
    let (max_k, max_batch) = (MAX_K.to_string(), MAX_BATCH.to_string());
    let server = Server::start_serving(&args(
        &fx.model,
        &[
            "--data",
            &data,
            "--max-k",
            &max_k,
            "--max-batch",
            &max_batch,
        ],
    ))
    .await;
    let mut client = server.client_with_limit(64 << 20).await;

    let user = fx.user(0);
    let ids = BadIds::new(fx.dataset.split.items.clone());
    let (all_items, item) = (ids.all_items.clone(), ids.all_items[0].clone());
    let with = |f: &dyn Fn(&mut RecommendRequest)| {
        let mut r = recommend(&user, &[], 10);
        f(&mut r);
        r
    };
    let known_user = user.clone();
    let excluded = all_items[..5].to_vec();
    let excluded_check = excluded.clone();

    let rows = vec![
        // --- Recommend: ids ---
        Row {
            name: "unknown user, no recent items",
            call: Call::Recommend(recommend("ghost", &[], 10)),
            expect: error(
                Code::NotFound,
                &[
                    "unknown user id 'ghost'",
                    "send the user's recent items",
                    "--unknown-user popularity",
                ],
            ),
        },
        Row {
            name: "unknown user with known recent items is served",
            call: Call::Recommend(recommend("ghost", std::slice::from_ref(&item), 10)),
            expect: Expect::Ok(Box::new(|r| assert_eq!(r[0].len(), 10))),
        },
        Row {
            name: "unknown recent item",
            call: Call::Recommend(recommend(&user, &[item.clone(), "nope".into()], 10)),
            expect: error(
                Code::InvalidArgument,
                &["query.recent_items: unknown item id 'nope'"],
            ),
        },
        Row {
            name: "unknown excluded item",
            call: Call::Recommend(with(&|r| r.exclude_items = vec!["zzz".into()])),
            expect: error(
                Code::InvalidArgument,
                &["exclude_items: unknown item id 'zzz'"],
            ),
        },
        Row {
            name: "user id of 1 MiB: named, but cut short in the message",
            call: Call::Recommend(recommend(&ids.long_id, &[], 10)),
            expect: error(
                Code::NotFound,
                &["unknown user id 'uuuuuuuu", "(1048576 bytes)"],
            ),
        },
        Row {
            name: "item id of 1 MiB",
            call: Call::Recommend(recommend(&user, std::slice::from_ref(&ids.long_id), 10)),
            expect: error(
                Code::InvalidArgument,
                &[
                    "query.recent_items: unknown item id 'uuu",
                    "(1048576 bytes)",
                ],
            ),
        },
        Row {
            name: "user id that is not ASCII",
            call: Call::Recommend(recommend("用户\u{1F600}", &[], 10)),
            expect: error(Code::NotFound, &["unknown user id '用户\u{1F600}'"]),
        },
        Row {
            name: "no user and no recent items",
            call: Call::Recommend(recommend("", &[], 10)),
            expect: error(
                Code::InvalidArgument,
                &["query needs a user_id, recent_items, or both"],
            ),
        },
        Row {
            name: "no query at all",
            call: Call::Recommend(with(&|r| r.query = None)),
            expect: error(Code::InvalidArgument, &["query is required"]),
        },
        // --- Recommend: k ---
        Row {
            name: "k = 0",
            call: Call::Recommend(with(&|r| r.k = 0)),
            expect: error(
                Code::InvalidArgument,
                &["k must be between 1 and 50 (the server's --max-k), got 0"],
            ),
        },
        Row {
            name: "k negative",
            call: Call::Recommend(with(&|r| r.k = -1)),
            expect: error(Code::InvalidArgument, &["got -1"]),
        },
        Row {
            name: "k = i32::MIN",
            call: Call::Recommend(with(&|r| r.k = i32::MIN)),
            expect: error(Code::InvalidArgument, &["got -2147483648"]),
        },
        Row {
            name: "k one above --max-k",
            call: Call::Recommend(with(&|r| r.k = MAX_K + 1)),
            expect: error(Code::InvalidArgument, &["got 51"]),
        },
        Row {
            name: "k = i32::MAX",
            call: Call::Recommend(with(&|r| r.k = i32::MAX)),
            expect: error(Code::InvalidArgument, &["got 2147483647"]),
        },
        Row {
            name: "k = --max-k is served",
            call: Call::Recommend(with(&|r| r.k = MAX_K)),
            expect: Expect::Ok(Box::new(|r| assert_eq!(r[0].len(), MAX_K as usize))),
        },
        // --- Recommend: lists ---
        Row {
            name: "empty recent items: the user's history",
            call: Call::Recommend(recommend(&user, &[], 10)),
            expect: Expect::Ok(Box::new(|r| assert_eq!(r[0].len(), 10))),
        },
        Row {
            name: "over-long recent items (200,000 ids): the last L count",
            call: Call::Recommend(with(&|r| {
                r.query.as_mut().unwrap().recent_items = ids.long_recent.clone();
                r.exclude_seen = Some(false);
            })),
            expect: Expect::Ok(Box::new(|r| assert_eq!(r[0].len(), 10))),
        },
        Row {
            name: "over-long recent items with an unknown id far back",
            call: Call::Recommend(recommend(&user, &ids.long_recent_bad_start, 10)),
            expect: error(Code::InvalidArgument, &["unknown item id 'ghost-item'"]),
        },
        Row {
            name: "recent items covering every item with exclude_seen: fewer than k, none seen",
            call: Call::Recommend(recommend(&user, &all_items, 10)),
            expect: Expect::Ok(Box::new(|r| assert!(r[0].is_empty(), "{:?}", r[0]))),
        },
        Row {
            name: "duplicate excludes",
            call: Call::Recommend(with(&|r| {
                r.exclude_seen = Some(false);
                r.exclude_items = excluded
                    .iter()
                    .chain(&excluded)
                    .chain(&excluded)
                    .cloned()
                    .collect();
            })),
            expect: Expect::Ok(Box::new(move |r| {
                assert_eq!(r[0].len(), 10);
                let distinct: HashSet<&String> = r[0].iter().collect();
                assert_eq!(distinct.len(), 10, "duplicates in {:?}", r[0]);
                assert!(
                    r[0].iter().all(|i| !excluded_check.contains(i)),
                    "{:?}",
                    r[0]
                );
            })),
        },
        Row {
            name: "duplicate recent items",
            call: Call::Recommend(recommend(&known_user, &vec![item.clone(); 7], 10)),
            expect: Expect::Ok(Box::new(|r| assert_eq!(r[0].len(), 10))),
        },
        Row {
            name: "message above the 4 MiB decode limit",
            call: Call::Recommend(recommend(&user, &ids.too_big, 10)),
            expect: error(
                Code::OutOfRange,
                &["message length too large", "the limit is: 4194304 bytes"],
            ),
        },
        // --- RecommendBatch ---
        Row {
            name: "empty batch",
            call: Call::Batch(RecommendBatchRequest { requests: vec![] }),
            expect: error(
                Code::InvalidArgument,
                &["requests must hold 1..=4 requests (the server's --max-batch), got 0"],
            ),
        },
        Row {
            name: "batch above --max-batch",
            call: Call::Batch(RecommendBatchRequest {
                requests: vec![recommend(&user, &[], 5); MAX_BATCH + 1],
            }),
            expect: error(Code::InvalidArgument, &["got 5"]),
        },
        Row {
            name: "batch with an unknown user: its index and the inner status",
            call: Call::Batch(RecommendBatchRequest {
                requests: vec![recommend(&user, &[], 5), recommend("ghost", &[], 5)],
            }),
            expect: error(Code::NotFound, &["requests[1]: unknown user id 'ghost'"]),
        },
        Row {
            name: "batch with a bad k",
            call: Call::Batch(RecommendBatchRequest {
                requests: vec![
                    recommend(&user, &[], 5),
                    recommend(&user, &[], 5),
                    recommend(&user, &[], -7),
                ],
            }),
            expect: error(
                Code::InvalidArgument,
                &["requests[2]: k must be between 1 and 50", "got -7"],
            ),
        },
        Row {
            name: "batch with a request without query",
            call: Call::Batch(RecommendBatchRequest {
                requests: vec![RecommendRequest {
                    query: None,
                    ..recommend(&user, &[], 5)
                }],
            }),
            expect: error(Code::InvalidArgument, &["requests[0]: query is required"]),
        },
        Row {
            name: "batch with duplicate requests is served, each answered",
            call: Call::Batch(RecommendBatchRequest {
                requests: vec![recommend(&user, &[], 3); MAX_BATCH],
            }),
            expect: Expect::Ok(Box::new(|r| {
                assert_eq!(r.len(), MAX_BATCH);
                assert!(r.iter().all(|x| x == &r[0] && x.len() == 3));
            })),
        },
        Row {
            name: "batch above the 4 MiB decode limit",
            call: Call::Batch(RecommendBatchRequest {
                requests: vec![recommend(&user, &ids.too_big, 5)],
            }),
            expect: error(Code::OutOfRange, &["the limit is: 4194304 bytes"]),
        },
        // --- Info (no input) ---
        Row {
            name: "info",
            call: Call::Info,
            expect: Expect::Ok(Box::new(|r| assert!(!r[0][0].is_empty()))),
        },
    ];

    run_rpc_rows(rows, |call| run(client.clone(), call)).await;
    // Still healthy after the whole matrix.
    let answer = client
        .recommend(recommend(&user, &[], 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.items.len(), 3);
}

/// The tensors of an artifact, editable: name, dtype, shape, little-endian bytes.
type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn read_tensors(dir: &Path) -> Tensors {
    weights::read(&dir.join(WEIGHTS_FILE))
}

fn serialize(tensors: &Tensors) -> Vec<u8> {
    weights::serialize(tensors)
}

fn tensor<'a>(
    tensors: &'a mut Tensors,
    name: &str,
) -> &'a mut (String, Dtype, Vec<usize>, Vec<u8>) {
    tensors.iter_mut().find(|t| t.0 == name).unwrap()
}

/// How to break an artifact: edits of the manifest (JSON), the tensors, and then of the
/// weights bytes; `rehash` records the final bytes' hash as the version (a writer that hashed
/// what it wrote), otherwise the version of the serialized tensors stays.
struct Breakage {
    name: &'static str,
    manifest: fn(&mut Value),
    tensors: fn(&mut Tensors),
    bytes: fn(&mut Option<Vec<u8>>),
    rehash: bool,
    needles: &'static [&'static str],
}

fn keep<T>(_: &mut T) {}

/// No breakage: a faithful copy.
const INTACT: Breakage = Breakage {
    name: "intact",
    manifest: keep,
    tensors: keep,
    bytes: keep,
    rehash: true,
    needles: &[],
};

fn breakages() -> Vec<Breakage> {
    vec![
        Breakage {
            name: "wrong shape",
            manifest: keep,
            tensors: |t| {
                let w = tensor(t, "W2.weight");
                let (rows, cols) = (w.2[0], w.2[1]);
                w.2 = vec![rows, cols - 1];
                w.3.truncate(rows * (cols - 1) * 4);
            },
            bytes: keep,
            rehash: true,
            needles: &["tensor 'W2.weight' has shape", "the manifest's model needs"],
        },
        Breakage {
            name: "missing tensor",
            manifest: keep,
            tensors: |t| t.retain(|x| x.0 != "fc1.bias"),
            bytes: keep,
            rehash: true,
            needles: &["missing tensor 'fc1.bias'"],
        },
        Breakage {
            name: "extra tensor",
            manifest: keep,
            tensors: |t| t.push(("junk.weight".into(), Dtype::F32, vec![1], vec![0; 4])),
            bytes: keep,
            rehash: true,
            needles: &["unexpected tensor 'junk.weight'"],
        },
        Breakage {
            name: "f16 tensor",
            manifest: keep,
            tensors: |t| {
                let b = tensor(t, "fc1.bias");
                b.1 = Dtype::F16;
                let half = b.3.len() / 2;
                b.3.truncate(half);
            },
            bytes: keep,
            rehash: true,
            needles: &["tensor 'fc1.bias' is F16, expected F32"],
        },
        Breakage {
            name: "NaN weight",
            manifest: keep,
            tensors: |t| tensor(t, "W2.weight").3[40..44].copy_from_slice(&f32::NAN.to_le_bytes()),
            bytes: keep,
            rehash: true,
            needles: &["tensor 'W2.weight' holds NaN or infinite values"],
        },
        Breakage {
            name: "infinite weight",
            manifest: keep,
            tensors: |t| {
                tensor(t, "user_embeddings.weight").3[0..4]
                    .copy_from_slice(&f32::INFINITY.to_le_bytes())
            },
            bytes: keep,
            rehash: true,
            needles: &["tensor 'user_embeddings.weight' holds NaN or infinite values"],
        },
        Breakage {
            name: "NaN in a conv filter",
            manifest: keep,
            tensors: |t| {
                tensor(t, "conv_h.2.weight").3[0..4].copy_from_slice(&f32::NAN.to_le_bytes())
            },
            bytes: keep,
            rehash: true,
            needles: &["tensor 'conv_h.2.weight' holds NaN"],
        },
        Breakage {
            name: "truncated weights (the manifest names the full file)",
            manifest: keep,
            tensors: keep,
            bytes: |b| {
                let b = b.as_mut().unwrap();
                b.truncate(b.len() / 2);
            },
            rehash: false,
            needles: &["does not match the manifest's version", "corrupt"],
        },
        Breakage {
            name: "truncated weights (hashed after truncation)",
            manifest: keep,
            tensors: keep,
            bytes: |b| {
                let b = b.as_mut().unwrap();
                b.truncate(b.len() - 3);
            },
            rehash: true,
            needles: &["not a safetensors file"],
        },
        Breakage {
            name: "empty weights file",
            manifest: keep,
            tensors: keep,
            bytes: |b| *b = Some(Vec::new()),
            rehash: true,
            needles: &["not a safetensors file"],
        },
        Breakage {
            name: "weights file missing",
            manifest: keep,
            tensors: keep,
            bytes: |b| *b = None,
            rehash: false,
            needles: &["model.safetensors", "No such file"],
        },
        Breakage {
            name: "manifest format version 2",
            manifest: |m| m["format_version"] = json!(2),
            tensors: keep,
            bytes: keep,
            rehash: true,
            needles: &["format version 2 is not supported"],
        },
        Breakage {
            name: "manifest with an unknown model kind",
            manifest: |m| m["model"]["kind"] = json!("gru"),
            tensors: keep,
            bytes: keep,
            rehash: true,
            needles: &["not an artifact manifest", "unknown variant `gru`"],
        },
        Breakage {
            name: "manifest without a model",
            manifest: |m| {
                m.as_object_mut().unwrap().remove("model");
            },
            tensors: keep,
            bytes: keep,
            rehash: true,
            needles: &["not an artifact manifest", "missing field `model`"],
        },
        Breakage {
            name: "manifest with an astronomical dim",
            manifest: |m| m["model"]["dim"] = json!(i64::MAX),
            tensors: keep,
            bytes: keep,
            rehash: true,
            needles: &["dim 9223372036854775807 is too large"],
        },
        Breakage {
            name: "manifest with a shape too large to hold",
            manifest: |m| {
                m["model"]["dim"] = json!(1 << 24);
                m["model"]["nh"] = json!(1 << 20);
            },
            tensors: keep,
            bytes: keep,
            rehash: true,
            needles: &["needs more than 68719476736 parameters"],
        },
        Breakage {
            name: "manifest with negative L",
            manifest: |m| m["model"]["sequence_length"] = json!(-3),
            tensors: keep,
            bytes: keep,
            rehash: true,
            needles: &["Caser needs L >= 1"],
        },
        Breakage {
            name: "manifest whose item count disagrees with its id map",
            manifest: |m| {
                let n = m["model"]["num_items"].as_i64().unwrap();
                m["model"]["num_items"] = json!(n + 1);
            },
            tensors: keep,
            bytes: keep,
            rehash: true,
            needles: &["item map has", "ids but the model has"],
        },
        Breakage {
            name: "manifest with a duplicate item id",
            manifest: |m| {
                let first = m["items"][0].clone();
                m["items"][3] = first;
            },
            tensors: keep,
            bytes: keep,
            rehash: true,
            needles: &["item map holds the id", "twice (dense 0 and 3)"],
        },
        Breakage {
            name: "manifest for other data",
            manifest: |m| m["data"]["fingerprint"] = json!("ffffffffffffffffffffffffffffffff"),
            tensors: keep,
            bytes: keep,
            rehash: true,
            needles: &["trained on data with fingerprint ffffffffffffffffffffffffffffffff"],
        },
    ]
}

/// Writes `good` broken by `b` into `dest` (atomically, as a publisher would).
fn write_broken(good: &Path, dest: &Path, b: &Breakage) {
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(good.join(MANIFEST_FILE)).unwrap()).unwrap();
    let mut tensors = read_tensors(good);
    (b.tensors)(&mut tensors);
    let serialized = serialize(&tensors);
    manifest["version"] = json!(weights_version(&serialized));
    let mut bytes = Some(serialized);
    (b.bytes)(&mut bytes);
    if b.rehash
        && let Some(bytes) = &bytes
    {
        manifest["version"] = json!(weights_version(bytes));
    }
    (b.manifest)(&mut manifest);
    replace_dir_atomic(dest, |staging| {
        if let Some(bytes) = &bytes {
            std::fs::write(staging.join(WEIGHTS_FILE), bytes)?;
        }
        std::fs::write(staging.join(MANIFEST_FILE), serde_json::to_vec(&manifest)?)
    })
    .unwrap();
}

/// Raw file-level damage to the manifest, beyond what JSON edits express.
/// A named way to damage an artifact folder on disk, and what the refusal must say.
type Damage = (&'static str, fn(&Path), &'static [&'static str]);

fn raw_manifest_damage() -> Vec<Damage> {
    vec![
        (
            "manifest truncated mid-JSON",
            |dir| {
                let p = dir.join(MANIFEST_FILE);
                let bytes = std::fs::read(&p).unwrap();
                std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            },
            &["not an artifact manifest", "EOF while parsing"],
        ),
        (
            "manifest missing",
            |dir| std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap(),
            &["manifest.json", "No such file"],
        ),
        (
            "manifest that is not UTF-8",
            |dir| {
                std::fs::write(
                    dir.join(MANIFEST_FILE),
                    b"{\"format_version\": 1, \"x\": \"\xff\xfe\"}",
                )
                .unwrap()
            },
            &["not an artifact manifest"],
        ),
        (
            "artifact folder is a file",
            |dir| {
                std::fs::remove_dir_all(dir).unwrap();
                std::fs::write(dir, b"not a folder").unwrap();
            },
            &["manifest.json", "Not a directory"],
        ),
    ]
}

fn assert_no_panic(stderr: &str, context: &str) {
    assert!(
        !stderr.contains("panicked"),
        "{context}: panicked:\n{stderr}"
    );
}

#[test]
fn broken_artifacts_are_refused_at_start_up_with_the_reason() {
    let fx = Fixture::new();
    let data = fx.data.to_string_lossy().into_owned();
    let mut failures = Vec::new();
    let mut rows = 0;
    let mut check = |name: &str, dir: &Path, needles: &[&str]| {
        rows += 1;
        let (status, stderr) = Student::spec().refusal(&args(dir, &["--data", &data]));
        assert_no_panic(&stderr, name);
        let missing = missing(&stderr, needles);
        if status.and_then(|s| s.code()) != Some(1) || !missing.is_empty() {
            failures.push(format!(
                "{name}: exit {status:?}, missing {missing:?} in:\n{stderr}"
            ));
        }
    };
    for (i, b) in breakages().iter().enumerate() {
        let dir = fx.root.join(format!("broken-{i}"));
        write_broken(&fx.model, &dir, b);
        check(b.name, &dir, b.needles);
    }
    for (i, (name, damage, needles)) in raw_manifest_damage().into_iter().enumerate() {
        let dir = fx.root.join(format!("damaged-{i}"));
        write_broken(&fx.model, &dir, &INTACT);
        damage(&dir);
        check(name, &dir, needles);
    }
    check(
        "artifact folder missing",
        &fx.root.join("nowhere"),
        &["nowhere/manifest.json", "No such file"],
    );
    assert_no_failures(&failures, rows, "\n\n");
}

async fn wait_for_failures(server: &Server, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.metric("student_reload_failures_total").await != Some(n) {
        assert!(
            Instant::now() < deadline,
            "reload failure {n} never counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_artifacts_are_refused_on_reload_and_the_old_model_keeps_serving() {
    let fx = Fixture::new();
    let data = fx.data.to_string_lossy().into_owned();
    let server = Server::start_serving(&args(
        &fx.model,
        &[
            "--data",
            &data,
            "--watch-interval-ms",
            "0",
            "--log-filter",
            "error",
        ],
    ))
    .await;
    let mut client = server.client().await;
    // Each broken artifact is a damaged copy of another version, so the reload tries it.
    let good = fx.root.join("v2");
    write_artifact(
        &good,
        &fx.config,
        2,
        &fx.dataset.split.users,
        &fx.dataset.split.items,
        &fx.dataset.manifest.fingerprint,
    );
    let v1 = fx.manifest.version.clone();
    let mut failures = 0.0;
    for b in breakages() {
        write_broken(&good, &fx.model, &b);
        server.signal("HUP");
        failures += 1.0;
        wait_for_failures(&server, failures).await;
        let r = client
            .recommend(recommend(&fx.user(1), &[], 5))
            .await
            .unwrap_or_else(|s| panic!("{}: not serving after the refused reload: {s:?}", b.name))
            .into_inner();
        assert_eq!(r.model_version, v1, "{}", b.name);
        assert_eq!(r.items.len(), 5, "{}", b.name);
    }
    let info = client
        .info(StudentInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.reloads, 0);
    assert_eq!(info.model.unwrap().version, v1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rpc_and_message_limit_rows() {
    use rankdistill_proto::v1::ReloadRequest;
    let fx = Fixture::new();
    let data = fx.data.to_string_lossy().into_owned();
    // Admin off (the default): Reload is refused and says how to turn it on.
    let closed = Server::start_serving(&args(&fx.model, &["--data", &data])).await;
    let status = closed
        .client()
        .await
        .reload(ReloadRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("--enable-admin"), "{status:?}");
    drop(closed);

    let server = Server::start_serving(&args(
        &fx.model,
        &[
            "--data",
            &data,
            "--enable-admin",
            "--watch-interval-ms",
            "0",
            "--max-message-bytes",
            "65536",
        ],
    ))
    .await;
    let mut client = server.client().await.max_encoding_message_size(1 << 20);
    let v1 = fx.manifest.version.clone();
    let r = client.reload(ReloadRequest {}).await.unwrap().into_inner();
    assert!(!r.changed && r.model_version == v1, "{r:?}");
    // A broken new version: FAILED_PRECONDITION naming the version still serving and why.
    let good = fx.root.join("v2");
    let v2 = write_artifact(
        &good,
        &fx.config,
        2,
        &fx.dataset.split.users,
        &fx.dataset.split.items,
        &fx.dataset.manifest.fingerprint,
    )
    .version;
    for b in breakages() {
        write_broken(&good, &fx.model, &b);
        let status = client.reload(ReloadRequest {}).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "{}: {status:?}",
            b.name
        );
        assert!(
            status
                .message()
                .starts_with(&format!("reload refused, still serving {v1}: ")),
            "{}: {status:?}",
            b.name
        );
        for needle in b.needles {
            assert!(status.message().contains(needle), "{}: {status:?}", b.name);
        }
    }
    write_broken(&good, &fx.model, &INTACT);
    let r = client.reload(ReloadRequest {}).await.unwrap().into_inner();
    assert!(
        r.changed && r.model_version == v2 && r.previous_version == v1,
        "{r:?}"
    );
    // --max-message-bytes 65536: a 100 KB request is refused with the limit.
    let recent: Vec<String> = (0..30_000).map(|i| fx.item(i % 10)).collect();
    let status = client
        .recommend(recommend(&fx.user(0), &recent, 5))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("the limit is: 65536 bytes"),
        "{status:?}"
    );
    let r = client
        .recommend(recommend(&fx.user(0), &[], 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.items.len(), r.model_version), (5, v2));
}
