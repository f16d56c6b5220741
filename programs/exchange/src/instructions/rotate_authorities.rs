//! `rotate_authorities(new_operator)`: the admin hands the admin role to `new admin`
//! (who must sign: a key nobody holds cannot be installed) and sets the operator.
//!
//! Accounts: admin (signer), new admin (signer; may be the admin), exchange (w).

use super::config_mut;
use crate::args::Args;
use crate::checks;
use crate::error::ExchangeError;
use crate::state::Exchange;
use pinocchio::{AccountView, Address, ProgramResult};

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    let mut args = Args::new(args);
    let new_operator = args.address()?;
    args.end()?;
    let [admin, new_admin, exchange, ..] = accounts else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    let mut exchange = config_mut::<Exchange>(exchange, program_id)?;
    checks::admin(admin, &exchange)?;
    checks::signer(new_admin, ExchangeError::NewAdminSignatureMissing)?;
    exchange.admin = *new_admin.address();
    exchange.operator = new_operator;
    Ok(())
}
