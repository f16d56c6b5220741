//! The rolling outflow cap: a leaky bucket per asset.
//!
//! `used` drains at `cap_atoms / window_slots` per slot; a withdrawal adds its amount and
//! must keep `used <= cap_atoms` unless the admin co-signs. So at most `cap_atoms` leave
//! per `window_slots` beyond what drained back. The drain rounds down at each update,
//! which only ever leaks less (the safe direction).

use crate::error::{Check, ExchangeError};

/// `used` after `elapsed_slots` of draining at `cap_atoms` per `window_slots`.
///
/// `window_slots` is never zero (`add_asset`/`update_asset` refuse it); the product is
/// taken in u128, where `u64 * u64` cannot overflow.
pub fn drained(used: u64, cap_atoms: u64, window_slots: u64, elapsed_slots: u64) -> u64 {
    let leaked = u128::from(cap_atoms) * u128::from(elapsed_slots) / u128::from(window_slots);
    // `leaked.min(used)` fits u64 because `used` does.
    used - leaked.min(u128::from(used)) as u64
}

/// `used + amount` if it stays within `cap_atoms`.
pub fn admit(used: u64, amount: u64, cap_atoms: u64) -> Check<u64> {
    let next = used
        .checked_add(amount)
        .ok_or(ExchangeError::ArithmeticOverflow)?;
    if next > cap_atoms {
        return Err(ExchangeError::OverWithdrawalCap);
    }
    Ok(next)
}

/// `used + amount` for an admin-approved withdrawal: never refused, still counted
/// (saturating) so that later operator withdrawals see it.
pub fn admit_approved(used: u64, amount: u64) -> u64 {
    used.saturating_add(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_drains_everything() {
        assert_eq!(drained(1_000, 1_000, 100, 100), 0);
        assert_eq!(drained(1_000, 1_000, 100, 1_000_000), 0);
    }

    #[test]
    fn a_partial_window_drains_pro_rata_rounded_down() {
        assert_eq!(drained(1_000, 1_000, 100, 25), 750);
        assert_eq!(drained(10, 10, 3, 1), 7); // 10/3 = 3.33 leaks 3
        assert_eq!(drained(5, 1_000, 100, 0), 5);
    }

    #[test]
    fn the_drain_never_goes_below_zero_nor_overflows() {
        assert_eq!(drained(3, u64::MAX, 1, u64::MAX), 0);
        assert_eq!(drained(u64::MAX, u64::MAX, u64::MAX, 1), u64::MAX - 1);
    }

    #[test]
    fn admit_refuses_past_the_cap_and_accepts_up_to_it() {
        assert_eq!(admit(600, 400, 1_000), Ok(1_000));
        assert_eq!(
            admit(600, 401, 1_000),
            Err(ExchangeError::OverWithdrawalCap)
        );
        assert_eq!(admit(0, 1, 0), Err(ExchangeError::OverWithdrawalCap));
    }

    #[test]
    fn admit_reports_overflow_as_its_own_error() {
        assert_eq!(
            admit(u64::MAX - 1, 5, u64::MAX),
            Err(ExchangeError::ArithmeticOverflow)
        );
    }

    #[test]
    fn approved_withdrawals_count_saturating() {
        assert_eq!(admit_approved(10, 5), 15);
        assert_eq!(admit_approved(u64::MAX - 1, 5), u64::MAX);
    }

    #[test]
    fn at_most_the_cap_leaves_per_window_when_withdrawing_every_slot() {
        // An operator draining as fast as allowed for ten windows moves at most
        // cap + cap * slots / window (the starting bucket plus what drained back).
        let (cap, window) = (1_000u64, 50u64);
        let (mut used, mut total) = (0u64, 0u64);
        for _slot in 0..(10 * window) {
            used = drained(used, cap, window, 1);
            let room = cap - used;
            used = admit(used, room, cap).unwrap();
            total += room;
        }
        assert!(total <= cap + cap * 10, "{total}");
    }
}
