//! The examples assert their own results; here they run under mpirun.

use crate::util::{example, mpirun};

#[test]
fn lecture_pool_map_at_five_ranks() {
    let r = mpirun(5, &example("pool_map"), &[]).ok();
    assert!(r.stdout.contains("[1, 4, 9]"), "{}", r.stdout);
}

#[test]
fn process_and_queue_as_messages() {
    for ranks in [2, 3] {
        let r = mpirun(ranks, &example("process_queue"), &[]).ok();
        assert!(
            r.stdout.contains("This happens in parallel."),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout.contains(r#"[Int(42), None, Str("hello")]"#),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn ring_exchange() {
    for ranks in [1, 2, 3, 5] {
        let r = mpirun(ranks, &example("ring"), &[]).ok();
        let expected = format!("sum of ranks {}", ranks * (ranks - 1) / 2);
        assert!(r.stdout.contains(&expected), "{}", r.stdout);
    }
}

#[test]
fn custom_struct_through_the_pool() {
    for ranks in [1, 3] {
        let r = mpirun(ranks, &example("custom_struct"), &[]).ok();
        assert!(r.stdout.contains("energies from"), "{}", r.stdout);
        assert!(
            r.stdout
                .contains("points rotated as plain bytes: matches the serial map"),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn user_messages_never_disturb_a_map() {
    for ranks in [2, 3] {
        let r = mpirun(ranks, &example("messages_and_maps"), &[]).ok();
        assert!(r.stdout.contains("every message intact"), "{}", r.stdout);
    }
}
