//! Netting a settlement batch into token transfers.
//!
//! A batch gives one signed delta per vault; each vault belongs to one of two groups
//! (the market's base or quote mint). Each group must sum to zero. The transfers are
//! greedy: repeatedly the largest remaining debit pays the largest remaining credit as
//! much as both allow. Each step settles at least one entry, so a group of `n` non-zero
//! entries needs at most `n - 1` transfers (the minimum is NP-hard in general; greedy
//! also finds every exact debit/credit pair that is the largest of both sides).

use crate::constants::MAX_SETTLE_ENTRIES;
use crate::error::{Check, ExchangeError};

/// Move `amount` atoms from entry `from` to entry `to` (indices into the batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    pub from: u8,
    pub to: u8,
    pub amount: u64,
}

/// The transfers of one batch: at most one per entry.
pub struct Plan {
    transfers: [Transfer; MAX_SETTLE_ENTRIES],
    len: usize,
}

impl Plan {
    /// The planned transfers, in the order to execute them.
    pub fn transfers(&self) -> &[Transfer] {
        &self.transfers[..self.len]
    }

    fn push(&mut self, transfer: Transfer) {
        self.transfers[self.len] = transfer;
        self.len += 1;
    }
}

/// Check that each group's deltas sum to zero (checked i64 arithmetic) and plan the
/// transfers. `groups[i]` is the group (0 or 1) of `deltas[i]`.
pub fn plan(deltas: &[i64], groups: &[u8]) -> Check<Plan> {
    if deltas.is_empty() {
        return Err(ExchangeError::EmptyBatch);
    }
    if deltas.len() > MAX_SETTLE_ENTRIES {
        return Err(ExchangeError::TooManyEntries);
    }
    if groups.len() != deltas.len() {
        return Err(ExchangeError::DeltaCountMismatch);
    }
    for group in 0..2u8 {
        if group_sum(deltas, groups, group)? != 0 {
            return Err(ExchangeError::UnbalancedDeltas);
        }
    }
    let mut plan = Plan {
        transfers: [Transfer::default(); MAX_SETTLE_ENTRIES],
        len: 0,
    };
    let mut left = [0i128; MAX_SETTLE_ENTRIES];
    for (slot, delta) in left.iter_mut().zip(deltas) {
        *slot = i128::from(*delta);
    }
    for group in 0..2u8 {
        plan_group(&mut left[..deltas.len()], groups, group, &mut plan);
    }
    Ok(plan)
}

fn group_sum(deltas: &[i64], groups: &[u8], group: u8) -> Check<i64> {
    let mut sum = 0i64;
    for (delta, g) in deltas.iter().zip(groups) {
        if *g == group {
            sum = sum
                .checked_add(*delta)
                .ok_or(ExchangeError::ArithmeticOverflow)?;
        }
    }
    Ok(sum)
}

/// Greedy transfers within one balanced group; `left` holds what each entry still owes
/// (negative) or is owed (positive), in i128 so that `-i64::MIN` is representable.
fn plan_group(left: &mut [i128], groups: &[u8], group: u8, plan: &mut Plan) {
    // Bound: each pass zeroes at least one entry, so at most `left.len()` passes.
    for _ in 0..left.len() {
        let (Some(debtor), Some(creditor)) = (
            extreme(left, groups, group, |v| -v),
            extreme(left, groups, group, |v| v),
        ) else {
            return;
        };
        let amount = (-left[debtor]).min(left[creditor]);
        left[debtor] += amount;
        left[creditor] -= amount;
        plan.push(Transfer {
            from: debtor as u8,
            to: creditor as u8,
            // A transfer never exceeds one delta's magnitude, which is at most 2^63.
            amount: amount as u64,
        });
    }
}

/// The entry of `group` with the largest positive `key(left)`, the first on a tie.
fn extreme(left: &[i128], groups: &[u8], group: u8, key: fn(i128) -> i128) -> Option<usize> {
    let mut best: Option<(usize, i128)> = None;
    for (i, value) in left.iter().enumerate() {
        let k = key(*value);
        if groups[i] == group && k > 0 && best.is_none_or(|(_, b)| k > b) {
            best = Some((i, k));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(deltas: &[i64], plan: &Plan) -> [i128; MAX_SETTLE_ENTRIES] {
        let mut moved = [0i128; MAX_SETTLE_ENTRIES];
        for t in plan.transfers() {
            moved[t.from as usize] -= i128::from(t.amount);
            moved[t.to as usize] += i128::from(t.amount);
        }
        for (i, d) in deltas.iter().enumerate() {
            assert_eq!(moved[i], i128::from(*d), "entry {i}");
        }
        moved
    }

    #[test]
    fn a_trade_with_a_fee_nets_into_three_transfers() {
        // Buyer pays 100 quote (fee 1 to the fee vault), receives 10 base.
        let deltas = [10, -10, -101, 100, 1];
        let groups = [0, 0, 1, 1, 1];
        let p = plan(&deltas, &groups).unwrap();
        apply(&deltas, &p);
        assert_eq!(p.transfers().len(), 3);
    }

    #[test]
    fn exact_pairs_need_one_transfer_each() {
        let deltas = [-5, 5, -7, 7];
        let p = plan(&deltas, &[0; 4]).unwrap();
        apply(&deltas, &p);
        assert_eq!(p.transfers().len(), 2);
    }

    #[test]
    fn zero_deltas_move_nothing() {
        let p = plan(&[0, 0], &[0, 1]).unwrap();
        assert!(p.transfers().is_empty());
    }

    #[test]
    fn each_group_must_balance_on_its_own() {
        assert_eq!(
            plan(&[5, -5], &[0, 1]).err(),
            Some(ExchangeError::UnbalancedDeltas)
        );
        assert_eq!(
            plan(&[5, -4], &[0, 0]).err(),
            Some(ExchangeError::UnbalancedDeltas)
        );
    }

    #[test]
    fn a_sum_leaving_i64_is_an_overflow() {
        assert_eq!(
            plan(&[i64::MAX, 1, i64::MIN], &[0; 3]).err(),
            Some(ExchangeError::ArithmeticOverflow)
        );
    }

    #[test]
    fn the_extremes_of_i64_net() {
        let deltas = [i64::MIN, i64::MAX, 1];
        let p = plan(&deltas, &[0; 3]).unwrap();
        apply(&deltas, &p);
        assert_eq!(p.transfers().len(), 2);
    }

    #[test]
    fn empty_and_oversized_batches_are_refused() {
        assert_eq!(plan(&[], &[]).err(), Some(ExchangeError::EmptyBatch));
        let big = [0i64; MAX_SETTLE_ENTRIES + 1];
        assert_eq!(
            plan(&big, &[0; MAX_SETTLE_ENTRIES + 1]).err(),
            Some(ExchangeError::TooManyEntries)
        );
    }

    #[test]
    fn random_balanced_batches_net_with_at_most_n_minus_one_transfers_per_group() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let n = 2 + (next() % (MAX_SETTLE_ENTRIES as u64 - 1)) as usize;
            let mut deltas = [0i64; MAX_SETTLE_ENTRIES];
            let mut groups = [0u8; MAX_SETTLE_ENTRIES];
            let mut sums = [0i64; 2];
            for i in 0..n {
                groups[i] = (next() % 2) as u8;
                deltas[i] = (next() % 2_000) as i64 - 1_000;
                sums[groups[i] as usize] += deltas[i];
            }
            // Balance each group on its last entry.
            for g in 0..2u8 {
                if let Some(last) = (0..n).rev().find(|i| groups[*i] == g) {
                    deltas[last] -= sums[g as usize];
                }
            }
            let p = plan(&deltas[..n], &groups[..n]).unwrap();
            apply(&deltas[..n], &p);
            let nonzero = |g: u8| {
                (0..n)
                    .filter(|i| groups[*i] == g && deltas[*i] != 0)
                    .count()
            };
            let bound = nonzero(0).saturating_sub(1) + nonzero(1).saturating_sub(1);
            assert!(
                p.transfers().len() <= bound,
                "{} > {bound}",
                p.transfers().len()
            );
        }
    }
}
