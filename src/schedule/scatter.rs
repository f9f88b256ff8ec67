//! The static schedule: one Scatterv out, one Gatherv back.
//!
//! 1. Root serializes every rank's chunks back to back and broadcasts a
//!    header `[status, items, chunk]` so all ranks know the plan (or that the
//!    root failed, so nobody blocks in a collective the root never enters).
//! 2. Scatter of byte counts, Scatterv of the bytes. The root's own share
//!    stays where it is: it decodes it straight from its send buffer.
//! 3. Each rank decodes, maps and encodes its chunks.
//! 4. Gatherv of a counter row per rank (items, chunks, times, result byte
//!    length of each chunk). The root blocks here until the slowest rank is
//!    done: that is the "wait" phase.
//! 5. Root broadcasts whether the result fits one Gatherv, then gathers the
//!    other ranks' result bytes and walks the chunks in item order to decode
//!    and checksum them (its own from its own buffer).

use std::time::Instant;

use serde::{Serialize, de::DeserializeOwned};

use crate::collect::Collector;
use crate::comm::{Comm, counts_and_displs};
use crate::error::MapError;
use crate::kernel::Kernel;
use crate::plan::Plan;
use crate::schedule::Work;
use crate::source::Source;
use crate::stats::{MapStats, Phases, RankStats, Spread};
use crate::{codec, schedule::Schedule};

const OK: u64 = 0;
const FAILED: u64 = 1;
/// Counters at the head of each rank's row: items, chunks, compute ns.
const FIXED: usize = 3;

/// Root-side serialized input: all bytes plus each rank's share.
struct Serialized {
    bytes: Vec<u8>,
    per_rank: Vec<usize>,
}

fn serialize<S>(input: &S, plan: &Plan) -> Result<Serialized, MapError>
where
    S: Source + ?Sized,
    S::Item: Serialize,
{
    let mut bytes = Vec::new();
    let mut per_rank = vec![0usize; plan.ranks];
    for (rank, share) in per_rank.iter_mut().enumerate() {
        for k in plan.chunks_of(rank) {
            *share += input.with_range(plan.range(k), |items| {
                codec::encode_items(items, &mut bytes)
            })?;
        }
    }
    counts_and_displs(&per_rank)?;
    Ok(Serialized { bytes, per_rank })
}

/// Scatterv counts and displacements into the root's whole send buffer, with
/// the root's count zeroed: it keeps its share instead of sending it to itself.
fn others_only(lens: &[usize]) -> Result<(Vec<i32>, Vec<i32>), MapError> {
    let (mut counts, displs) = counts_and_displs(lens)?;
    counts[0] = 0;
    Ok((counts, displs))
}

/// Runs one static map; results go to `collector` on the root. See the
/// module docs for the protocol.
pub fn run<I, T, U, F, S>(
    comm: &Comm,
    kernel: &Kernel,
    work: Work<'_, I>,
    f: &F,
    collector: &mut Collector<'_, S>,
) -> Result<MapStats, MapError>
where
    I: Source<Item = T> + ?Sized,
    T: Serialize + DeserializeOwned + Send,
    U: Serialize + DeserializeOwned + Send,
    F: Fn(T) -> U + Sync,
    S: FnMut(usize, U),
{
    let start = Instant::now();
    let (rank, size) = (comm.rank(), comm.size());

    let options = work.options;

    // 1. Serialize on the root and agree on the plan: the chunk size and the
    //    spans still to map (one, 0..items, unless resuming from a journal).
    let mut header = [FAILED, 0, 0];
    let mut root_input = None;
    let mut root_error = None;
    let mut spans: Vec<u64> = Vec::new();
    if comm.is_root() {
        let input = work
            .input
            .expect("the root rank must pass Some(input) to map");
        let plan = Plan::over(work.todo, size, options.chunk);
        match serialize(input, &plan) {
            Ok(s) => {
                spans = plan
                    .spans()
                    .iter()
                    .flat_map(|s| [s.start as u64, s.end as u64])
                    .collect();
                header = [OK, plan.chunk as u64, spans.len() as u64];
                root_input = Some(s);
            }
            Err(e) => root_error = Some(e),
        }
    }
    let serialize_s = start.elapsed().as_secs_f64();
    comm.broadcast_u64s(&mut header);
    if header[0] != OK {
        return Err(root_error.unwrap_or(MapError::RootFailed));
    }
    spans.resize(header[2] as usize, 0);
    comm.broadcast_u64s(&mut spans);
    let spans = spans
        .chunks(2)
        .map(|s| s[0] as usize..s[1] as usize)
        .collect();
    let plan = Plan::over(spans, size, Some(header[1] as usize));

    // 2. Scatter to the other ranks.
    let t = Instant::now();
    let lens: Option<Vec<u64>> = root_input
        .as_ref()
        .map(|s| s.per_rank.iter().map(|&l| l as u64).collect());
    let my_len = comm.scatter_u64(lens.as_deref()) as usize;
    let received = match &root_input {
        Some(s) => {
            let (counts, displs) = others_only(&s.per_rank)?;
            comm.scatter_bytes(Some((&s.bytes, &counts, &displs)), 0);
            None
        }
        None => Some(comm.scatter_bytes(None, my_len)),
    };
    let bytes_scattered = root_input
        .as_ref()
        .map_or(0, |s| (s.bytes.len() - s.per_rank[0]) as u64);
    let scatter_s = t.elapsed().as_secs_f64();

    // 3. Compute, chunk by chunk, straight from the received (or own) bytes.
    let t = Instant::now();
    let mine: &[u8] = match (&received, &root_input) {
        (Some(bytes), _) => bytes,
        (None, Some(s)) => &s.bytes[..s.per_rank[0]],
        (None, None) => unreachable!("non-root ranks always receive"),
    };
    let my_chunks: Vec<usize> = plan.chunks_of(rank).collect();
    let my_items = plan.items_of(rank);
    let mut out = Vec::new();
    let mut row = vec![my_items as u64, my_chunks.len() as u64, 0];
    let mut at = 0;
    let mut abandoned = false;
    for &k in &my_chunks {
        let range = plan.range(k);
        // After a chunk stopped at a failure (abort), the map ends in an
        // error: the rest of this rank's chunks are not worth computing.
        let written = if abandoned {
            kernel.encode_abandoned(&mut out)
        } else {
            let (used, written, complete) = kernel.map_chunk(
                &mine[at..],
                range.start,
                range.len(),
                f,
                options.on_error,
                &mut out,
            );
            at += used;
            abandoned = !complete;
            written
        };
        row.push(written as u64);
    }
    drop(received);
    drop(root_input);
    let compute_s = t.elapsed().as_secs_f64();
    row[2] = (compute_s * 1e9) as u64;

    // 4. Counters (the root waits here for the slowest rank).
    let t = Instant::now();
    let row_lens: Vec<usize> = (0..size)
        .map(|r| FIXED + plan.chunks_of(r).count())
        .collect();
    let rows = comm.gather_u64s_varcount(&row, comm.is_root().then_some(&row_lens[..]));
    let wait_s = t.elapsed().as_secs_f64();

    // 5. Gather the other ranks' results if they fit one collective.
    let row_at: Vec<usize> = offsets(&row_lens).collect();
    let per_rank_bytes: Option<Vec<usize>> = rows.as_ref().map(|rows| {
        row_at
            .iter()
            .zip(&row_lens)
            .map(|(&at, &len)| rows[at + FIXED..at + len].iter().sum::<u64>() as usize)
            .collect()
    });
    let mut verdict = [OK];
    let mut gather_counts = None;
    if let Some(lens) = &per_rank_bytes {
        // The gathered buffer holds only the other ranks' bytes.
        let others: Vec<usize> = std::iter::once(0)
            .chain(lens[1..].iter().copied())
            .collect();
        match counts_and_displs(&others) {
            Ok(c) => gather_counts = Some(c),
            Err(e) => {
                verdict[0] = FAILED;
                root_error = Some(e);
            }
        }
    }
    comm.broadcast_u64s(&mut verdict);
    if verdict[0] != OK {
        return Err(root_error.unwrap_or(MapError::RootFailed));
    }
    let t = Instant::now();
    let gathered = comm.gather_bytes(
        if comm.is_root() { &[] } else { &out },
        gather_counts.as_ref().map(|(c, d)| (&c[..], &d[..])),
    );
    let gather_s = t.elapsed().as_secs_f64();

    let (Some(rows), Some(gathered), Some(per_rank_bytes)) = (rows, gathered, per_rank_bytes)
    else {
        return Ok(MapStats {
            schedule: Schedule::Static.name().into(),
            items: my_items as u64,
            ranks: size as u64,
            threads: kernel.threads() as u64,
            chunk: plan.chunk as u64,
            chunks: my_chunks.len() as u64,
            phases: Phases {
                scatter: scatter_s,
                compute: Spread::of([compute_s]),
                ..Phases::default()
            },
            ..MapStats::default()
        });
    };

    // 6. Assemble in item order on the root: its own results from `out`, the
    //    others' from the gathered buffer (which has no bytes for the root).
    let t = Instant::now();
    let mut cursor: Vec<usize> = offsets(&per_rank_bytes)
        .map(|at| at.saturating_sub(per_rank_bytes[0]))
        .collect();
    for k in 0..plan.chunks() {
        let owner = k % size;
        let len = rows[row_at[owner] + FIXED + k / size] as usize;
        let source = if owner == 0 { &out } else { &gathered };
        let bytes = &source[cursor[owner]..cursor[owner] + len];
        cursor[owner] += len;
        let range = plan.range(k);
        collector.add::<U>(range.start, range.len(), bytes, owner);
    }
    let assemble_s = t.elapsed().as_secs_f64();

    let compute = Spread::of(row_at.iter().map(|&at| rows[at + 2] as f64 * 1e-9));
    let per_rank = row_at
        .iter()
        .map(|&at| {
            let compute_s = rows[at + 2] as f64 * 1e-9;
            RankStats {
                items: rows[at],
                chunks: rows[at + 1],
                compute_s,
                // Static ranks idle from their own end to the slowest rank's.
                wait_s: compute.max - compute_s,
            }
        })
        .collect();
    let stats = MapStats {
        schedule: Schedule::Static.name().into(),
        items: plan.items as u64,
        ranks: size as u64,
        threads: kernel.threads() as u64,
        chunk: plan.chunk as u64,
        chunks: plan.chunks() as u64,
        wall_s: start.elapsed().as_secs_f64(),
        phases: Phases {
            serialize: serialize_s,
            scatter: scatter_s,
            compute,
            wait: wait_s,
            gather: gather_s,
            assemble: assemble_s,
        },
        bytes_scattered,
        bytes_gathered: gathered.len() as u64,
        checksum: collector.checksum(),
        per_rank,
        skipped: Vec::new(), // filled in by the pool
        interrupted: None,   // collectives cannot stop half-way
    };
    Ok(stats)
}

/// Start offsets of consecutive segments of the given lengths.
fn offsets(lens: &[usize]) -> impl Iterator<Item = usize> + '_ {
    lens.iter().scan(0, |acc, &l| {
        let at = *acc;
        *acc += l;
        Some(at)
    })
}
