//! `withdraw_approved(withdrawal_id, account_id, amount)`: `withdraw` co-signed by the
//! admin, not bounded by the rolling cap (still counted in it, saturating).
//!
//! Accounts: operator (signer), admin (signer), then `withdraw`'s from the exchange on.

use super::withdraw::run;
use crate::error::ExchangeError;
use pinocchio::{AccountView, Address, ProgramResult};

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    let [operator, admin, rest @ ..] = accounts else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    run(program_id, operator, Some(admin), rest, args)
}
