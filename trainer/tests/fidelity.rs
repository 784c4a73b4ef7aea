//! `trainer fidelity` against real teacher-svc and student-svc processes: the figures it
//! computes from both services' answers equal the student's live figures from its shadow path
//! (`--shadow-fraction 1`, no other traffic), query for query.

mod support;
use support::{Server, p, prepared, trainer_ok};

#[test]
fn client_figures_equal_the_live_shadow_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path(), "data", "120", "150", "4");
    let (teacher_dir, student_dir) = (dir.path().join("teacher"), dir.path().join("student"));
    for (out, dim, seed) in [(&teacher_dir, "16", "1"), (&student_dir, "8", "2")] {
        trainer_ok(&[
            "train",
            "--data",
            &p(&data),
            "--out",
            &p(out),
            "--dim",
            dim,
            "--epochs",
            "1",
            "--seed",
            seed,
        ]);
    }
    let teacher = Server::teacher(&data, &teacher_dir);
    let student = Server::shadowing_student(&data, &student_dir, &teacher.addr, &[]);
    student.wait_serving();
    let out = trainer_ok(&[
        "fidelity",
        "--data",
        &p(&data),
        "--student",
        &student.addr.to_string(),
        "--teacher",
        &teacher.addr,
        "--users",
        "80",
        "--seed",
        "3",
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(r["users"], 80, "{r:#}");
    assert_eq!(r["client"]["queries"], 80, "{r:#}");
    assert_eq!(r["live"]["queries"], 80, "{r:#}");
    let overlap = r["client"]["overlap"].as_f64().unwrap();
    assert!(overlap > 0.0 && overlap <= 1.0, "{r:#}");
    assert!(r["max_difference"].as_f64().unwrap() < 1e-9, "{r:#}");
}
