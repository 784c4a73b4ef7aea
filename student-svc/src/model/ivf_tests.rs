//! The approximate index against the exact scan: exact scores always, the exact answer when
//! every list is probed, measured recall that holds on other queries, and unchanged query
//! vectors and full scores once the table is stored list by list.

use super::tests::artifact;
use super::*;

fn queries(model: &StudentModel, n: u32, seed: u32) -> Vec<QueryInput> {
    let items = model.num_items() as u32;
    let users = model.num_users().max(1) as u32;
    let l = model.sequence_length() as u32;
    (0..n)
        .map(|u| QueryInput {
            user: Some((u * 7 + seed) % users),
            inputs: (0..l)
                .map(|t| (u.wrapping_mul(2654435761) ^ (t * 977 + seed)) % (items + 1))
                .collect(),
        })
        .collect()
}

fn exact_and_indexed(config: ModelConfig, settings: IndexSettings) -> (StudentModel, StudentModel) {
    let exact = StudentModel::from_artifact(artifact(config.clone()), Kernel::detect())
        .unwrap()
        .with_scan(Scan::F32);
    let tuning = queries(&exact, 200, 1);
    let indexed = StudentModel::from_artifact(artifact(config), Kernel::detect())
        .unwrap()
        .with_index(&settings, &tuning);
    (exact, indexed)
}

#[test]
fn probing_every_list_gives_the_exact_answer() {
    for config in [
        ModelConfig::mf(12, 40, 3000),
        ModelConfig::caser(8, 30, 2500),
    ] {
        let settings = IndexSettings {
            lists: 37,
            probes: 37,
            ..IndexSettings::default()
        };
        let (exact, indexed) = exact_and_indexed(config, settings);
        let qs = queries(&exact, 20, 9);
        let excludes: Vec<Vec<u32>> = (0..20).map(|u| vec![u, 17, 400 + u]).collect();
        assert_eq!(
            indexed.top_k_batch(&qs, 15, &excludes),
            exact.top_k_batch(&qs, 15, &excludes)
        );
        let report = indexed.index_report().unwrap();
        assert_eq!((report.lists, report.probes), (37, 37));
        assert_eq!(report.recall_at_10, 1.0);
    }
}

#[test]
fn scores_are_exact_and_recall_holds_on_other_queries() {
    let settings = IndexSettings {
        target_recall: 0.9,
        ..IndexSettings::default()
    };
    let (exact, indexed) = exact_and_indexed(ModelConfig::mf(16, 400, 4000), settings);
    let report = indexed.index_report().unwrap().clone();
    assert_eq!(report.lists, default_lists(4000));
    assert!(report.probes < report.lists, "{report:?}");
    assert!(report.recall_at_10 >= 0.9, "{report:?}");
    assert_eq!(report.tuning_queries, 200);
    // Held-out queries: other users.
    let qs = queries(&exact, 200, 5);
    let none = vec![Vec::new(); qs.len()];
    let all = exact.score_all(&qs);
    let want = exact.top_k_batch(&qs, RECALL_AT, &none);
    let got = indexed.top_k_batch(&qs, RECALL_AT, &none);
    let mut hits = 0;
    for ((g, w), scores) in got.iter().zip(&want).zip(&all) {
        assert_eq!(g.len(), RECALL_AT);
        for &(item, score) in g {
            assert_eq!(
                score, scores[item as usize],
                "item {item} got an inexact score"
            );
            hits += usize::from(w.iter().any(|&(i, _)| i == item));
        }
        assert!(g.windows(2).all(|p| p[0].1 >= p[1].1), "not best first");
    }
    let recall = hits as f64 / (RECALL_AT * qs.len()) as f64;
    assert!(recall >= 0.8, "held-out recall {recall} ({report:?})");
}

#[test]
fn the_list_order_keeps_query_vectors_scores_and_bias_in_item_order() {
    let settings = IndexSettings {
        lists: 20,
        probes: 3,
        ..IndexSettings::default()
    };
    let (exact, indexed) = exact_and_indexed(ModelConfig::mf(6, 10, 500), settings);
    // MF fold-in (an unknown user) reads the reordered table once its own copy is dropped.
    let unknown = QueryInput {
        user: None,
        inputs: vec![0, 3, 499, 500, 7],
    };
    let mut a = vec![0f32; exact.stride()];
    let mut b = vec![0f32; exact.stride()];
    exact.query_vector(&unknown, &mut a);
    indexed.query_vector(&unknown, &mut b);
    assert_eq!(a, b);
    let qs = [unknown, queries(&exact, 1, 2).remove(0)];
    assert_eq!(exact.score_all(&qs), indexed.score_all(&qs));
    assert_eq!(exact.item_bias(), indexed.item_bias());
}

#[test]
fn the_same_seed_builds_the_same_index() {
    let build = |seed| {
        let settings = IndexSettings {
            seed,
            ..IndexSettings::default()
        };
        let (exact, indexed) = exact_and_indexed(ModelConfig::mf(8, 50, 2000), settings);
        let qs = queries(&exact, 30, 3);
        (
            indexed.top_k_batch(&qs, 10, &vec![Vec::new(); 30]),
            indexed.index_report().unwrap().probes,
            indexed.index_report().unwrap().recall_at_10,
        )
    };
    assert_eq!(build(4), build(4));
}

#[test]
fn short_probed_lists_are_extended_until_k_items_can_answer() {
    let settings = IndexSettings {
        lists: 50,
        probes: 1,
        ..IndexSettings::default()
    };
    let (exact, indexed) = exact_and_indexed(ModelConfig::mf(8, 20, 1000), settings);
    let qs = queries(&exact, 5, 4);
    let excludes: Vec<Vec<u32>> = (0..5).map(|u| (u..u + 40).collect()).collect();
    for (got, excl) in indexed
        .top_k_batch(&qs, 200, &excludes)
        .iter()
        .zip(&excludes)
    {
        assert_eq!(got.len(), 200);
        assert!(got.iter().all(|(i, _)| excl.binary_search(i).is_err()));
    }
    // Asking for the whole catalog gives the exact answer.
    assert_eq!(
        indexed.top_k_batch(&qs, 1000, &excludes),
        exact.top_k_batch(&qs, 1000, &excludes)
    );
}
