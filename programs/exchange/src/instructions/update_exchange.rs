//! `update_exchange(status)`: the admin halts (1) or resumes (0) the exchange.
//!
//! Accounts: admin (signer), exchange (w).

use super::config_mut;
use crate::args::Args;
use crate::checks;
use crate::constants::{STATUS_ACTIVE, STATUS_HALTED};
use crate::error::ExchangeError;
use crate::state::Exchange;
use pinocchio::{AccountView, Address, ProgramResult};

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    let mut args = Args::new(args);
    let status = args.u8()?;
    args.end()?;
    let [admin, exchange, ..] = accounts else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    let mut exchange = config_mut::<Exchange>(exchange, program_id)?;
    checks::admin(admin, &exchange)?;
    if status != STATUS_ACTIVE && status != STATUS_HALTED {
        return Err(ExchangeError::InvalidStatus.into());
    }
    exchange.status = status;
    Ok(())
}
