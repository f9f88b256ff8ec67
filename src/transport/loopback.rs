//! An in-process transport for unit tests: `size` ranks as threads of one
//! process, each with a mailbox. Sends never block (like eager MPI sends);
//! receives match by source and tag in arrival order, which keeps MPI's
//! non-overtaking rule. Collectives are messages on a tag of their own,
//! entered by every rank in the same order, as MPI requires.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{ROOT, Tag, Transport};

/// Collectives travel on this tag; the pool's own tags are positive.
const COLLECTIVE: Tag = -1;

/// Messages waiting for one rank: (source, tag, bytes), oldest first.
#[derive(Default)]
struct Mailbox {
    queue: Mutex<VecDeque<(usize, Tag, Vec<u8>)>>,
    arrived: Condvar,
}

/// One rank's end of an in-process group.
pub struct Loopback {
    rank: usize,
    boxes: Arc<Vec<Mailbox>>,
}

impl Loopback {
    /// `size` connected ranks; move each to its own thread.
    pub fn group(size: usize) -> Vec<Loopback> {
        let boxes: Arc<Vec<Mailbox>> = Arc::new((0..size).map(|_| Mailbox::default()).collect());
        (0..size)
            .map(|rank| Loopback {
                rank,
                boxes: Arc::clone(&boxes),
            })
            .collect()
    }

    fn take(&self, source: Option<usize>, tag: Tag, wait: bool) -> Option<(usize, Vec<u8>)> {
        let mailbox = &self.boxes[self.rank];
        let mut queue = mailbox.queue.lock().expect("mailbox lock");
        loop {
            let at = queue
                .iter()
                .position(|(from, t, _)| *t == tag && source.is_none_or(|s| s == *from));
            if let Some(at) = at {
                let (from, _, bytes) = queue.remove(at).expect("found");
                return Some((from, bytes));
            }
            if !wait {
                return None;
            }
            // A lost wake-up cannot hang a test: re-check every 100 ms.
            queue = mailbox
                .arrived
                .wait_timeout(queue, Duration::from_millis(100))
                .expect("mailbox lock")
                .0;
        }
    }

    fn post(&self, dest: usize, tag: Tag, bytes: Vec<u8>) {
        let mailbox = &self.boxes[dest];
        mailbox
            .queue
            .lock()
            .expect("mailbox lock")
            .push_back((self.rank, tag, bytes));
        mailbox.arrived.notify_all();
    }

    fn offsets(lens: &[usize]) -> Vec<usize> {
        lens.iter()
            .scan(0, |at, &l| {
                *at += l;
                Some(*at - l)
            })
            .collect()
    }
}

impl Transport for Loopback {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.boxes.len()
    }

    fn send(&self, dest: usize, tag: Tag, bytes: Vec<u8>) {
        assert!(tag >= 0, "negative tags are the transport's own");
        self.post(dest, tag, bytes);
    }

    fn receive(&self, source: Option<usize>, tag: Tag) -> (usize, Vec<u8>) {
        self.take(source, tag, true)
            .expect("a blocking receive returns")
    }

    fn try_receive(&self, source: Option<usize>, tag: Tag) -> Option<(usize, Vec<u8>)> {
        self.take(source, tag, false)
    }

    fn flush(&self) {}

    fn broadcast(&self, bytes: &mut [u8]) {
        if self.is_root() {
            for r in 1..self.size() {
                self.post(r, COLLECTIVE, bytes.to_vec());
            }
        } else {
            let (_, got) = self.take(Some(ROOT), COLLECTIVE, true).expect("broadcast");
            bytes.copy_from_slice(&got);
        }
    }

    fn scatterv(&self, send: Option<(&[u8], &[usize])>, recv: &mut [u8]) {
        if self.is_root() {
            let (bytes, lens) = send.expect("the root passes the parts");
            let at = Self::offsets(lens);
            for r in 1..self.size() {
                self.post(r, COLLECTIVE, bytes[at[r]..at[r] + lens[r]].to_vec());
            }
            recv.copy_from_slice(&bytes[..lens[ROOT]]);
        } else {
            let (_, got) = self.take(Some(ROOT), COLLECTIVE, true).expect("scatter");
            recv.copy_from_slice(&got);
        }
    }

    fn gatherv(&self, send: &[u8], recv: Option<(&mut [u8], &[usize])>) {
        if self.is_root() {
            let (buffer, lens) = recv.expect("the root passes a buffer");
            let at = Self::offsets(lens);
            buffer[..send.len()].copy_from_slice(send);
            for r in 1..self.size() {
                let (_, got) = self.take(Some(r), COLLECTIVE, true).expect("gather");
                buffer[at[r]..at[r] + lens[r]].copy_from_slice(&got);
            }
        } else {
            self.post(ROOT, COLLECTIVE, send.to_vec());
        }
    }

    fn barrier(&self) {
        // Everyone reports in, then the root releases everyone (this
        // broadcast posts even when empty).
        let lens = vec![0; self.size()];
        self.gatherv(&[], self.is_root().then_some((&mut [][..], &lens[..])));
        self.broadcast(&mut []);
    }
}

/// Runs `body(transport)` on `size` threads, one per rank; returns each
/// rank's result, by rank.
pub fn run<R: Send>(size: usize, body: impl Fn(&Loopback) -> R + Sync) -> Vec<R> {
    let ranks = Loopback::group(size);
    std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .iter()
            .map(|t| {
                let body = &body;
                s.spawn(move || body(t))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("rank thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{broadcast_bytes, gather_bytes, scatter_lens};

    #[test]
    fn collectives_move_the_right_bytes() {
        let out = run(3, |t| {
            let b = broadcast_bytes(t, t.is_root().then(|| b"hello".to_vec()));
            let mine = scatter_lens(t, t.is_root().then_some(&[7usize, 8, 9][..]));
            let lens = [1usize, 2, 3];
            let parts = b"abbccc";
            let mut recv = vec![0u8; lens[t.rank()]];
            t.scatterv(t.is_root().then_some((&parts[..], &lens[..])), &mut recv);
            let gathered = gather_bytes(t, &recv);
            t.barrier();
            (b, mine, recv, gathered)
        });
        for (rank, (b, mine, recv, _)) in out.iter().enumerate() {
            assert_eq!(b, b"hello");
            assert_eq!(*mine, 7 + rank);
            assert_eq!(recv.len(), rank + 1);
        }
        assert_eq!(
            out[0].3,
            Some(vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()])
        );
    }

    #[test]
    fn messages_match_by_source_and_tag_in_order() {
        let out = run(3, |t| match t.rank() {
            1 | 2 => {
                for k in 0..3u8 {
                    t.send(0, 5, vec![t.rank() as u8, k]);
                }
                t.send(0, 6, vec![9]);
                Vec::new()
            }
            _ => {
                let mut got = vec![t.receive(None, 6).1, t.receive(None, 6).1];
                for _ in 0..3 {
                    got.push(t.receive(Some(2), 5).1);
                }
                got.push(t.try_receive(Some(1), 5).unwrap().1);
                got
            }
        });
        assert_eq!(out[0][0], [9]);
        assert_eq!(&out[0][2..5], [[2, 0], [2, 1], [2, 2]]);
        assert_eq!(out[0][5], [1, 0]);
    }
}
