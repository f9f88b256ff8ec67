//! Every workload at 1, 2, 3 and 8 ranks gives the serial answer and checksum.

use std::path::PathBuf;

use hpcmap::Source;
use hpcmap::cli::workloads::mandelbrot::Mandelbrot;
use hpcmap::cli::workloads::pi::Pi;
use hpcmap::cli::workloads::primes::{DEFAULT_BLOCK, Primes};
use hpcmap::cli::workloads::spin::Spin;
use hpcmap::cli::workloads::square::{Square, sum_of_squares};
use hpcmap::cli::workloads::wordcount::WordCount;
use hpcmap::cli::workloads::{Workload, fold, rng::SplitMix64};
use serde_json::{Value, json};

use crate::util::{record, temp_dir};

const RANKS: [usize; 4] = [1, 2, 3, 8];

/// The answer and checksum of a plain serial loop, no MPI involved.
fn serial<W: Workload>(w: &W) -> (Value, String) {
    let items = w.input().unwrap().collect();
    let results: Vec<W::Output> = items.into_iter().map(|i| w.map(i)).collect();
    let checksum = format!("{:016x}", hpcmap::checksum(&results).unwrap());
    (w.answer(&fold(w, results)).value, checksum)
}

/// Every schedule at every rank count, plus threads, chunk sizes 1, prime and
/// larger than the input, and unordered collection.
fn variants() -> Vec<(usize, Vec<&'static str>)> {
    let mut v = Vec::new();
    for schedule in ["static", "dynamic", "guided"] {
        for ranks in RANKS {
            v.push((ranks, vec!["--schedule", schedule]));
        }
        v.push((2, vec!["--schedule", schedule, "--threads", "2"]));
        v.push((3, vec!["--schedule", schedule, "--chunk", "7"]));
        v.push((
            2,
            vec!["--schedule", schedule, "--chunk", "1", "--threads", "3"],
        ));
        v.push((3, vec!["--schedule", schedule, "--chunk", "1000000000"]));
    }
    v.push((
        3,
        vec!["--schedule", "dynamic", "--chunk", "2", "--unordered"],
    ));
    v.push((
        2,
        vec!["--schedule", "guided", "--unordered", "--threads", "2"],
    ));
    v.push((2, vec!["--schedule", "static", "--unordered"]));
    v
}

/// Runs `args` in every variant and compares with the serial reference.
fn check_everywhere<W: Workload>(w: &W, args: &[&str]) -> Value {
    let (answer, checksum) = serial(w);
    for (ranks, extra) in variants() {
        let mut all = args.to_vec();
        all.extend(extra.iter().copied());
        let r = record(ranks, &all);
        assert_eq!(
            r["answer"]["value"], answer,
            "answer at {ranks} ranks {extra:?}"
        );
        assert_eq!(
            r["checksum"], checksum,
            "checksum at {ranks} ranks {extra:?}"
        );
        assert_eq!(r["ranks"], ranks as u64);
        let per_rank = r["per_rank"].as_array().unwrap();
        let sum = |key: &str| {
            per_rank
                .iter()
                .map(|p| p[key].as_u64().unwrap())
                .sum::<u64>()
        };
        assert_eq!(r["items"], sum("items"), "per-rank items add up {extra:?}");
        assert_eq!(
            r["chunks"],
            sum("chunks"),
            "per-rank chunks add up {extra:?}"
        );
    }
    answer
}

#[test]
fn square_matches_closed_form() {
    let answer = check_everywhere(&Square { items: 100_000 }, &["square", "--items", "100000"]);
    assert_eq!(answer, json!(sum_of_squares(100_000) as u64));
}

#[test]
fn primes_below_ten_million() {
    let w = Primes::new(10_000_000, DEFAULT_BLOCK);
    let answer = check_everywhere(&w, &["primes", "--limit", "10000000"]);
    assert_eq!(answer, json!(664_579));
}

#[test]
fn pi_is_seeded_per_task() {
    let w = Pi {
        samples: 2_000_000,
        tasks: 37,
        seed: 7,
    };
    let answer = check_everywhere(
        &w,
        &["pi", "--samples", "2000000", "--tasks", "37", "--seed", "7"],
    );
    let estimate = answer["estimate"].as_f64().unwrap();
    assert!((estimate - std::f64::consts::PI).abs() < 0.01, "{estimate}");
}

#[test]
fn mandelbrot_rows() {
    let w = Mandelbrot {
        width: 300,
        height: 201,
        max_iter: 200,
        output: None,
    };
    check_everywhere(
        &w,
        &[
            "mandelbrot",
            "--width",
            "300",
            "--height",
            "201",
            "--max-iter",
            "200",
        ],
    );
}

#[test]
fn spin_with_skew() {
    let w = Spin::new(500, 5.0, 4.0);
    check_everywhere(
        &w,
        &["spin", "--items", "500", "--micros", "5", "--skew", "4"],
    );
}

/// Writes `words` random words from a small vocabulary; returns the file and the true counts.
fn text_file(dir: &std::path::Path, name: &str, words: usize, seed: u64) -> PathBuf {
    const VOCAB: [&str; 8] = [
        "alpha", "Beta", "gamma", "delta", "épsilon", "zeta", "eta", "theta",
    ];
    let mut rng = SplitMix64::for_item(seed, 0);
    let mut text = String::new();
    for i in 0..words {
        text.push_str(VOCAB[(rng.next_u64() % 8) as usize]);
        text.push_str(if i % 13 == 12 { ".\n" } else { " " });
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn wordcount_over_several_files() {
    let dir = temp_dir("wordcount");
    // Over 256 KiB, so the big file is cut into several pieces (items).
    let big = text_file(&dir, "big.txt", 120_000, 1);
    let small = text_file(&dir, "small.txt", 1000, 2);
    let w = WordCount {
        inputs: vec![big.clone(), small.clone()],
        top: 8,
    };
    assert!(w.input().unwrap().len() > 2, "the test needs several items");
    let args = [
        "wordcount",
        "--input",
        big.to_str().unwrap(),
        small.to_str().unwrap(),
        "--top",
        "8",
    ];
    let answer = check_everywhere(&w, &args);
    assert_eq!(answer["words"], 121_000);
    assert_eq!(answer["distinct"], 8);
    // "Beta" is counted as "beta": case folds.
    assert!(
        answer["top"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e[0] == "beta")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mandelbrot_writes_a_png_of_the_right_size() {
    let dir = temp_dir("png");
    let png = dir.join("m.png");
    crate::util::hpcmap_run(
        3,
        &[
            "mandelbrot",
            "--width",
            "64",
            "--height",
            "48",
            "--max-iter",
            "100",
            "--output",
            png.to_str().unwrap(),
            "-q",
        ],
    )
    .ok();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, at offsets 16 and 20.
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 64);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 48);
    let pgm = dir.join("m.pgm");
    crate::util::hpcmap_run(
        2,
        &[
            "mandelbrot",
            "--width",
            "64",
            "--height",
            "48",
            "--output",
            pgm.to_str().unwrap(),
            "-q",
        ],
    )
    .ok();
    let bytes = std::fs::read(&pgm).unwrap();
    assert!(bytes.starts_with(b"P5\n64 48\n255\n"));
    assert_eq!(bytes.len(), 13 + 64 * 48);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn record_has_the_documented_fields() {
    let r = record(2, &["square", "--items", "1000"]);
    for field in [
        "workload",
        "items",
        "ranks",
        "nodes",
        "hosts",
        "threads",
        "schedule",
        "chunk",
        "wall_s",
        "phases",
        "bytes_scattered",
        "bytes_gathered",
        "items_per_s",
        "imbalance",
        "answer",
        "checksum",
    ] {
        assert!(r.get(field).is_some(), "missing {field} in {r}");
    }
    assert_eq!(r["workload"], "square");
    assert_eq!(r["hosts"].as_array().unwrap().len(), 2);
    // The root keeps its own half: only the other rank's 500 items cross MPI,
    // 8 bytes each, and their 500 results (each chunk's outcome travels in
    // the rank's row, apart from the results).
    assert_eq!(r["bytes_scattered"], 4000);
    assert_eq!(r["bytes_gathered"], 4000);
    for phase in [
        "serialize",
        "scatter",
        "compute",
        "wait",
        "gather",
        "assemble",
    ] {
        assert!(r["phases"].get(phase).is_some(), "missing phase {phase}");
    }
}

#[test]
fn parts_add_up_to_the_whole() {
    let total: u64 = (1..=3)
        .map(|i| {
            let part = format!("{i}/3");
            let r = record(2, &["primes", "--limit", "1000000", "--part", &part]);
            assert_eq!(r["part"], part);
            r["answer"]["value"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(total, 78_498);
}

/// A part's `--results` lines carry their index in the whole input: the
/// parts' files, joined, are the whole run's.
#[test]
fn parts_results_join_into_the_whole_runs() {
    let dir = temp_dir("part-results");
    let run = |results: &PathBuf, part: Option<&str>| {
        let mut args = vec!["square", "--items", "30", "-q", "--results"];
        args.push(results.to_str().unwrap());
        args.extend(part.map(|p| ["--part", p]).into_iter().flatten());
        crate::util::hpcmap_run(2, &args).ok();
        std::fs::read_to_string(results).unwrap()
    };
    let whole = run(&dir.join("whole.jsonl"), None);
    assert!(whole.starts_with("[0,1]\n[1,4]\n") && whole.ends_with("[29,900]\n"));
    let joined: String = (1..=3)
        .map(|i| {
            run(
                &dir.join(format!("part-{i}.jsonl")),
                Some(&format!("{i}/3")),
            )
        })
        .collect();
    assert_eq!(joined, whole);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pingpong_model_explains_a_run_on_its_placement_only() {
    let dir = temp_dir("model");
    let model = dir.join("network.json");
    let r = crate::util::mpirun(
        2,
        &crate::util::hpcmap(),
        &[
            "bench",
            "pingpong",
            "--max-bytes",
            "65536",
            "--repeat",
            "2",
            "--save",
            model.to_str().unwrap(),
        ],
    )
    .ok();
    // Two ranks on this machine: one link, its shared memory.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let fits = saved["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 1, "{saved}");
    let fit = &fits[0];
    let between = fit["between"].as_str().unwrap();
    let (a, b) = between.split_once(" <-> ").unwrap();
    assert_eq!(a, b, "{saved}");
    assert!(
        r.stdout
            .contains(&format!("hockney: {between} (same host): alpha =")),
        "{}",
        r.stdout
    );
    let (alpha, beta) = (
        fit["alpha"].as_f64().unwrap(),
        fit["beta"].as_f64().unwrap(),
    );
    assert!(alpha > 0.0 && beta > 0.0, "{saved}");
    assert!(fit["first_touch"].as_f64().unwrap() > 0.0, "{saved}");

    let r = record(
        2,
        &[
            "square",
            "--items",
            "100000",
            "--network",
            model.to_str().unwrap(),
        ],
    );
    let m = &r["model"];
    assert_eq!(m["missing"], json!([]), "{m}");
    let links = m["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{m}");
    let link = &links[0];
    assert_eq!(
        (
            &link["between"],
            &link["placement"],
            &link["ranks"],
            &link["messages"]
        ),
        (&json!(between), &json!("same host"), &json!(1), &json!(3)),
        "{m}"
    );
    // Rank 1's 50 000 items: about 400 kB out and 400 kB back, in messages
    // under 1 MiB (warm buffers: beta, not first touch), plus 3 latencies.
    let bytes = r["bytes_scattered"].as_f64().unwrap() + r["bytes_gathered"].as_f64().unwrap();
    assert!((800_000.0..800_100.0).contains(&bytes), "{bytes}");
    assert_eq!(link["bytes"].as_f64().unwrap(), bytes);
    let expected = 3.0 * alpha + bytes * beta;
    let predicted = m["predicted_comm_s"].as_f64().unwrap();
    assert!(
        (predicted - expected).abs() <= 1e-9 * expected.max(1.0),
        "{m}"
    );
    assert!(m["measured_comm_s"].as_f64().unwrap() > 0.0);

    // A file with fits of other hosts only: the run says which link has none.
    let elsewhere = dir.join("elsewhere.json");
    let other = json!({"fits": [{"between": "x <-> y", "alpha": alpha, "beta": beta}]});
    std::fs::write(&elsewhere, other.to_string()).unwrap();
    let r = crate::util::hpcmap_run(2, &["square", "--network", elsewhere.to_str().unwrap()]).ok();
    assert!(
        r.stdout.contains(&format!(
            "model: none fits this placement: no fit for {between} in {}",
            elsewhere.display()
        )),
        "{}",
        r.stdout
    );

    let missing = dir.join("missing.json");
    let r = crate::util::hpcmap_run(2, &["square", "--network", missing.to_str().unwrap()]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("cannot read network model"),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}
