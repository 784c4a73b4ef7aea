//! Property-based fuzzing of what rankdistill reads from disk: the interaction-file parsers,
//! the prepared-dataset folder and the artifact (manifest + safetensors) loader. Every input,
//! however mangled, must give a value or an error, never a panic, and what is accepted must
//! be consistent. A fixed case budget runs in CI; `PROPTEST_CASES=N` raises it
//! (`scripts/fuzz.sh` runs the long budget). `tests/corpus/` holds crafted nasty inputs,
//! replayed with the outcome each must have (see `corpus_replays_with_the_expected_outcomes`).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rankdistill_core::artifact::{
    self, ArtifactManifest, DataRef, MANIFEST_FILE, ModelConfig, WEIGHTS_FILE, weights_version,
};
use rankdistill_core::dataset::{Format, RawInteraction, compare_raw_ids, read_interactions};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::{SplitConfig, split};
use rankdistill_testkit::fuzz::config;

/// Raw ids a real file could hold, biased towards the awkward: numerically equal spellings,
/// non-ASCII, control characters, long ids.
fn raw_id() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..40).prop_map(|n| n.to_string()),
        (0u32..40).prop_map(|n| format!("0{n}")),
        (0u32..40).prop_map(|n| format!("+{n}")),
        "[a-z]{1,3}",
        "[\\p{L}\\p{N}\\p{S}]{1,6}",
        "[\\x00-\\x08\\x0e-\\x1f!-~]{1,4}",
        "[0-9]{19,22}",
    ]
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes: a value or an error naming the file, never a panic; accepted rows
    /// have non-empty ids without whitespace.
    #[test]
    fn interaction_files_of_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        format in proptest::option::of(prop_oneof![Just(Format::Movielens), Just(Format::Caser), Just(Format::Sasrec)]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "any.data", &bytes);
        match read_interactions(&path, format) {
            Ok((_, rows)) => {
                prop_assert!(!rows.is_empty());
                for r in &rows {
                    prop_assert!(!r.user.is_empty() && !r.item.is_empty());
                    prop_assert!(!r.user.contains(char::is_whitespace) && !r.item.contains(char::is_whitespace));
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with(&path.display().to_string()), "{e}"),
        }
    }

    /// Line-structured text close to valid: fields of every kind, odd separators, comments.
    #[test]
    fn interaction_lines_near_the_formats(
        lines in proptest::collection::vec(
            (proptest::collection::vec(prop_oneof![
                raw_id(),
                Just("NaN".to_string()), Just("-inf".to_string()), Just("1e309".to_string()),
                Just("-9223372036854775808".to_string()), Just("9223372036854775808".to_string()),
                Just("#".to_string()), Just("\u{feff}".to_string()),
            ], 0..6), prop_oneof![Just(" "), Just("\t"), Just(" \t "), Just("\u{a0}"), Just("\u{3000}")], prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]),
            0..30),
    ) {
        let text: String = lines.iter().map(|(fields, sep, end)| format!("{}{end}", fields.join(sep))).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "near.data", text.as_bytes());
        let _ = read_interactions(&path, None);
        let _ = read_interactions(&path, Some(Format::Movielens));
        let _ = read_interactions(&path, Some(Format::Sasrec));
    }

    /// `compare_raw_ids` is a total order that only ties equal strings, so the dense
    /// numbering cannot depend on the order ids are met in.
    #[test]
    fn raw_id_order_is_total_and_strict(a in raw_id(), b in raw_id(), c in raw_id()) {
        use std::cmp::Ordering::*;
        prop_assert_eq!(compare_raw_ids(&a, &b) == Equal, a == b);
        prop_assert_eq!(compare_raw_ids(&a, &b), compare_raw_ids(&b, &a).reverse());
        if compare_raw_ids(&a, &b) != Greater && compare_raw_ids(&b, &c) != Greater {
            prop_assert_ne!(compare_raw_ids(&a, &c), Greater);
        }
    }

    /// Any rows: the split saves and loads back identically, and interleaving the users'
    /// rows differently (each user's own order kept) gives the same fingerprint.
    #[test]
    fn prepared_datasets_round_trip_and_do_not_depend_on_interleaving(
        rows in proptest::collection::vec((raw_id(), raw_id(), proptest::option::of(-3i64..3)), 1..60),
        test_fraction in prop_oneof![Just(0.0), Just(0.2), Just(0.5), 0.0f64..0.99],
        valid_fraction in prop_oneof![Just(0.0), Just(0.25)],
        seed in any::<u64>(),
    ) {
        let raw: Vec<RawInteraction> = rows.iter().map(|(u, i, t)| RawInteraction { user: u.clone(), item: i.clone(), timestamp: *t }).collect();
        let config = SplitConfig { test_fraction, valid_fraction };
        let data = PreparedDataset::new(split(&raw, config), "fuzz".into(), Format::Movielens, config);
        // Another interleaving: a stable sort of the rows by a seeded key per user.
        let key = |u: &str| blake3::hash(format!("{seed}{u}").as_bytes()).as_bytes()[0];
        let mut shuffled = raw.clone();
        shuffled.sort_by_key(|r| key(&r.user));
        let again = PreparedDataset::new(split(&shuffled, config), "fuzz".into(), Format::Movielens, config);
        prop_assert_eq!(&again.manifest.fingerprint, &data.manifest.fingerprint);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p");
        match data.save(&out) {
            Ok(()) => {
                let back = PreparedDataset::load(&out).unwrap();
                prop_assert_eq!(back, data);
            }
            Err(e) => {
                prop_assert!(data.split.items.is_empty(), "{e}");
                prop_assert!(!out.exists());
            }
        }
    }

    /// A saved dataset with one file mangled: loads (only if the content is unchanged) or is
    /// refused, never a panic.
    #[test]
    fn mangled_prepared_folders_are_refused(
        file in prop_oneof![Just("manifest.json"), Just("users.txt"), Just("items.txt"), Just("train.txt"), Just("valid.txt"), Just("test.txt")],
        cut in any::<proptest::sample::Index>(),
        insert in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let raw: Vec<RawInteraction> = (0..40).map(|i| RawInteraction { user: (i % 5).to_string(), item: (i % 9).to_string(), timestamp: Some(i) }).collect();
        let config = SplitConfig { test_fraction: 0.2, valid_fraction: 0.2 };
        let data = PreparedDataset::new(split(&raw, config), "fuzz".into(), Format::Movielens, config);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p");
        data.save(&out).unwrap();
        let path = out.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = cut.index(bytes.len() + 1);
        bytes.truncate(at);
        bytes.extend_from_slice(&insert);
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(back) = PreparedDataset::load(&out) {
            prop_assert_eq!(back.split, data.split);
        }
    }
}

/// A valid artifact in memory: manifest and weights bytes.
fn artifact_bytes(config: &ModelConfig) -> (ArtifactManifest, Vec<u8>) {
    let bytes = rankdistill_testkit::weights::model_weights(config, |i| i as f32 * 0.01);
    let mut manifest = ArtifactManifest::new(
        config.clone(),
        DataRef {
            path: "fuzz".into(),
            fingerprint: "fp".into(),
        },
    );
    manifest.version = weights_version(&bytes);
    manifest.items = (0..config.num_items).map(|i| format!("i{i}")).collect();
    (manifest, bytes)
}

fn small_config() -> impl Strategy<Value = ModelConfig> {
    (
        1i64..6,
        1i64..5,
        1i64..7,
        1i64..4,
        0i64..3,
        0i64..3,
        any::<bool>(),
    )
        .prop_map(|(d, users, items, l, nv, nh, mf)| {
            let mut c = if mf {
                ModelConfig::mf(d, users, items)
            } else {
                ModelConfig::caser(d, users, items)
            };
            c.sequence_length = l;
            c.nv = nv;
            c.nh = if nv + nh == 0 { 1 } else { nh };
            c
        })
}

/// Values a damaged manifest might hold in a numeric field.
fn wild_number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        (-3i64..10).prop_map(serde_json::Value::from),
        Just(serde_json::Value::from(i64::MAX)),
        Just(serde_json::Value::from(i64::MIN)),
        Just(serde_json::Value::from(u64::MAX)),
        Just(serde_json::Value::from(1i64 << 31)),
        Just(serde_json::Value::from(1i64 << 32)),
        Just(serde_json::Value::from(4097)),
        Just(serde_json::Value::from(1.5)),
        Just(serde_json::Value::from("7")),
        Just(serde_json::Value::Null),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Manifests with any numbers in the model shape: refused or accepted, never a panic or
    /// an overflow; an accepted shape's parameter count is computable.
    #[test]
    fn manifests_with_wild_shapes(
        config in small_config(),
        field in prop_oneof![Just("dim"), Just("num_users"), Just("num_items"), Just("sequence_length"), Just("nv"), Just("nh"), Just("dropout"), Just("format_version"), Just("num_parameters")],
        value in wild_number(),
        second in prop_oneof![Just("dim"), Just("nh"), Just("num_items")],
        second_value in wild_number(),
    ) {
        let (manifest, bytes) = artifact_bytes(&config);
        let mut json = serde_json::to_value(&manifest).unwrap();
        for (f, v) in [(field, value), (second, second_value)] {
            if f == "format_version" || f == "num_parameters" {
                json[f] = v;
            } else {
                json["model"][f] = v;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), serde_json::to_vec(&json).unwrap()).unwrap();
        std::fs::write(dir.path().join(WEIGHTS_FILE), &bytes).unwrap();
        if let Ok(m) = artifact::read_manifest(dir.path()) {
            prop_assert!(m.model.validate().is_ok());
            let _ = m.model.num_parameters();
        }
        if let Ok(a) = artifact::load(dir.path(), None) {
            for (name, shape) in a.manifest.model.expected_tensors() {
                let (s, v) = &a.weights.tensors[&name];
                prop_assert_eq!(s, &shape);
                prop_assert_eq!(v.len(), shape.iter().product::<usize>());
            }
        }
    }

    /// Weights files cut, spliced or overwritten anywhere, rehashed so that only the
    /// safetensors parsing and the shape checks stand between them and the model.
    #[test]
    fn weights_files_mangled_anywhere(
        config in small_config(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        truncate in proptest::option::of(any::<proptest::sample::Index>()),
    ) {
        let (mut manifest, mut bytes) = artifact_bytes(&config);
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
            if bytes.is_empty() { break; }
        }
        if let Some(t) = truncate {
            let keep = t.index(bytes.len() + 1);
            bytes.truncate(keep);
        }
        manifest.version = weights_version(&bytes);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), serde_json::to_vec(&manifest).unwrap()).unwrap();
        std::fs::write(dir.path().join(WEIGHTS_FILE), &bytes).unwrap();
        if let Ok(a) = artifact::load(dir.path(), None) {
            for (name, shape) in config.expected_tensors() {
                prop_assert_eq!(&a.weights.tensors[&name].0, &shape);
            }
        }
    }

    /// Arbitrary bytes as a manifest.
    #[test]
    fn manifests_of_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), &bytes).unwrap();
        prop_assert!(artifact::read_manifest(dir.path()).is_err());
    }
}

/// The corpus: `tests/corpus/<kind>/<name>` files, each with a first-line-free sidecar
/// `<name>.expect` holding `ok` (or `ok N` rows) or `error: <substring of the message>`.
fn corpus(kind: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind);
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "expect"))
        .map(|p| {
            let expect = std::fs::read_to_string(p.with_extension(match p.extension() {
                Some(e) => format!("{}.expect", e.to_string_lossy()),
                None => "expect".into(),
            }))
            .unwrap_or_else(|e| panic!("{}: no .expect sidecar: {e}", p.display()));
            (p, expect.trim().to_string())
        })
        .collect();
    out.sort();
    out
}

fn check_outcome<T>(
    path: &Path,
    expect: &str,
    result: Result<T, String>,
    count: impl Fn(&T) -> usize,
) -> Option<String> {
    let got = match &result {
        Ok(v) => format!("ok {}", count(v)),
        Err(e) => format!("error: {e}"),
    };
    let fine = match (expect.strip_prefix("error: "), &result) {
        (Some(needle), Err(e)) => e.contains(needle),
        (None, Ok(v)) => expect == "ok" || expect == format!("ok {}", count(v)),
        _ => false,
    };
    (!fine).then(|| format!("{}: expected '{expect}', got '{got}'", path.display()))
}

#[test]
fn corpus_replays_with_the_expected_outcomes() {
    let mut failures = Vec::new();
    let mut n = 0;
    for (path, expect) in corpus("interactions") {
        n += 1;
        let result = read_interactions(&path, None).map_err(|e| e.to_string());
        failures.extend(check_outcome(&path, &expect, result, |(_, rows)| {
            rows.len()
        }));
    }
    for (path, expect) in corpus("manifests") {
        n += 1;
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&path, dir.path().join(MANIFEST_FILE)).unwrap();
        let result = artifact::read_manifest(dir.path()).map_err(|e| e.to_string());
        failures.extend(check_outcome(&path, &expect, result, |_| 1));
    }
    for (path, expect) in corpus("safetensors") {
        n += 1;
        // Each weights file is served with the manifest of the small Caser below, version
        // set to its hash: only its own content decides.
        let config = ModelConfig {
            sequence_length: 2,
            nh: 1,
            ..ModelConfig::caser(2, 1, 2)
        };
        let (mut manifest, _) = artifact_bytes(&config);
        let bytes = std::fs::read(&path).unwrap();
        manifest.version = weights_version(&bytes);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join(WEIGHTS_FILE), &bytes).unwrap();
        let result = artifact::load(dir.path(), None).map_err(|e| e.to_string());
        failures.extend(check_outcome(&path, &expect, result, |a| {
            a.weights.tensors.len()
        }));
    }
    assert!(n >= 30, "the corpus shrank to {n} files");
    assert!(
        failures.is_empty(),
        "{} of {n} corpus files:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
