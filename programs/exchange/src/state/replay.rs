//! The replay window: which ids (withdrawals, settlement batches) were applied.
//!
//! It remembers `REPLAY_WINDOW_IDS` ids from `base` in a ring of bits (the bit of id
//! `i` is `i % REPLAY_WINDOW_IDS`). An id past the window slides `base` forward so that
//! it fits; ids left below the new base are refused for ever. Refusing never moves money
//! twice: the off-chain side re-credits a refused withdrawal, and sends a market's
//! settlement batches in order, so theirs never fall behind.

use crate::constants::REPLAY_WINDOW_IDS;

const BITS: usize = REPLAY_WINDOW_IDS as usize;
const BYTES: usize = BITS / 8;

/// Why an id was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Below the window's base.
    TooOld,
    /// Already applied.
    AlreadyApplied,
}

/// `base: u64` (little-endian) and a ring of `REPLAY_WINDOW_IDS` bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    base: [u8; 8],
    bits: [u8; BYTES],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            base: [0; 8],
            bits: [0; BYTES],
        }
    }
}

impl ReplayWindow {
    /// The lowest id the window still accepts.
    pub fn base(&self) -> u64 {
        u64::from_le_bytes(self.base)
    }

    /// Whether `id` is inside the window and applied.
    pub fn contains(&self, id: u64) -> bool {
        let base = self.base();
        id >= base && id - base < REPLAY_WINDOW_IDS && self.bit(id)
    }

    /// Record `id` as applied, or say why it cannot be; nothing changes on a refusal.
    pub fn apply(&mut self, id: u64) -> Result<(), Replay> {
        let base = self.base();
        if id < base {
            return Err(Replay::TooOld);
        }
        if id - base >= REPLAY_WINDOW_IDS {
            // The new base keeps `id` as the window's last id; the bits of the ids the
            // window leaves behind are cleared (they are the ring positions reused next).
            let new_base = id - (REPLAY_WINDOW_IDS - 1);
            self.clear_ids(base, new_base - base);
            self.base = new_base.to_le_bytes();
        } else if self.bit(id) {
            return Err(Replay::AlreadyApplied);
        }
        let pos = Self::position(id);
        self.bits[pos / 8] |= 1 << (pos % 8);
        Ok(())
    }

    fn position(id: u64) -> usize {
        (id % REPLAY_WINDOW_IDS) as usize
    }

    fn bit(&self, id: u64) -> bool {
        let pos = Self::position(id);
        self.bits[pos / 8] & (1 << (pos % 8)) != 0
    }

    /// Clear the bits of `count` ids from `first`: at most two runs of the ring.
    fn clear_ids(&mut self, first: u64, count: u64) {
        if count >= REPLAY_WINDOW_IDS {
            self.bits = [0; BYTES];
            return;
        }
        let start = Self::position(first);
        let end = start + count as usize;
        if end <= BITS {
            self.clear_run(start, end);
        } else {
            self.clear_run(start, BITS);
            self.clear_run(0, end - BITS);
        }
    }

    /// Clear ring positions `[from, to)`: single bits at the ragged ends, whole bytes
    /// between (at most 14 bits and `BYTES` bytes, so a slide costs little compute).
    fn clear_run(&mut self, mut from: usize, to: usize) {
        while from < to && from % 8 != 0 {
            self.bits[from / 8] &= !(1 << (from % 8));
            from += 1;
        }
        while from + 8 <= to {
            self.bits[from / 8] = 0;
            from += 8;
        }
        while from < to {
            self.bits[from / 8] &= !(1 << (from % 8));
            from += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: u64 = REPLAY_WINDOW_IDS;

    #[test]
    fn an_id_applies_once() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.apply(7), Ok(()));
        assert!(w.contains(7));
        assert_eq!(w.apply(7), Err(Replay::AlreadyApplied));
        assert_eq!(w.apply(8), Ok(()));
    }

    #[test]
    fn ids_in_any_order_inside_the_window_apply() {
        let mut w = ReplayWindow::default();
        for id in [N - 1, 0, 500, 3, N - 2] {
            assert_eq!(w.apply(id), Ok(()), "{id}");
        }
        assert_eq!(w.base(), 0);
    }

    #[test]
    fn an_id_past_the_window_slides_the_base_so_it_is_the_last() {
        let mut w = ReplayWindow::default();
        w.apply(5).unwrap();
        w.apply(N + 10).unwrap();
        assert_eq!(w.base(), 11);
        assert_eq!(w.apply(5), Err(Replay::TooOld));
        assert_eq!(w.apply(10), Err(Replay::TooOld));
        assert_eq!(w.apply(N + 10), Err(Replay::AlreadyApplied));
        // Ids still inside the new window keep their bits; fresh ones apply.
        assert_eq!(w.apply(11), Ok(()));
    }

    #[test]
    fn a_slide_keeps_the_ids_still_inside_the_window() {
        let mut w = ReplayWindow::default();
        for id in [100, 200, 900] {
            w.apply(id).unwrap();
        }
        w.apply(N + 150).unwrap(); // base becomes 151
        assert!(!w.contains(100));
        assert_eq!(w.apply(200), Err(Replay::AlreadyApplied));
        assert_eq!(w.apply(900), Err(Replay::AlreadyApplied));
        // The ring positions of the ids left behind were cleared for their new ids.
        assert_eq!(w.apply(N + 100), Ok(()));
    }

    #[test]
    fn a_jump_further_than_the_window_clears_everything() {
        let mut w = ReplayWindow::default();
        for id in 0..N {
            w.apply(id).unwrap();
        }
        w.apply(10 * N).unwrap();
        assert_eq!(w.base(), 9 * N + 1);
        for id in (9 * N + 1)..(10 * N) {
            assert!(!w.contains(id), "{id}");
        }
    }

    #[test]
    fn the_largest_id_applies_without_overflow() {
        let mut w = ReplayWindow::default();
        w.apply(u64::MAX).unwrap();
        assert_eq!(w.base(), u64::MAX - (N - 1));
        assert_eq!(w.apply(u64::MAX), Err(Replay::AlreadyApplied));
        assert_eq!(w.apply(u64::MAX - 1), Ok(()));
    }

    #[test]
    fn sliding_matches_a_naive_model() {
        // A seeded walk compared with a set of applied ids and the documented base rule.
        let mut w = ReplayWindow::default();
        let mut applied: [u64; 4096] = [u64::MAX; 4096];
        let mut count = 0;
        let mut base = 0u64;
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..4000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let id = (base + state % (N + N / 2)).saturating_sub(N / 4);
            let seen = applied[..count].contains(&id);
            let expected = if id < base {
                Err(Replay::TooOld)
            } else if seen {
                Err(Replay::AlreadyApplied)
            } else {
                Ok(())
            };
            assert_eq!(w.apply(id), expected, "id {id} base {base}");
            if expected.is_ok() {
                applied[count] = id;
                count += 1;
                if id - base >= N {
                    base = id - (N - 1);
                }
            }
            assert_eq!(w.base(), base);
        }
    }
}
