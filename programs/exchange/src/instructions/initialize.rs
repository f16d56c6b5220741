//! `initialize()`: create the `Exchange` config with its admin and operator.
//!
//! Accounts: payer (signer, w), admin (signer), operator, exchange (w), system program.

use super::create_pda;
use crate::checks;
use crate::constants::{AUTHORITY_SEED, EXCHANGE_SEED, STATUS_ACTIVE};
use crate::error::ExchangeError;
use crate::state::{init, Exchange, Layout, ReplayWindow};
use pinocchio::{cpi::Seed, error::ProgramError, AccountView, Address, ProgramResult};

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    crate::args::Args::new(args).end()?;
    let [payer, admin, operator, exchange, system_program, ..] = accounts else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    checks::signer(payer, ExchangeError::PayerSignatureMissing)?;
    checks::writable(payer)?;
    checks::signer(admin, ExchangeError::AdminSignatureMissing)?;
    checks::writable(exchange)?;
    checks::system_program(system_program)?;
    let bump = checks::pda(
        exchange,
        &[EXCHANGE_SEED],
        program_id,
        ExchangeError::ExchangePdaMismatch,
    )?;
    checks::uninitialized(exchange, program_id)?;
    let (authority, authority_bump) = Address::find_program_address(&[AUTHORITY_SEED], program_id);

    let bump_seed = [bump];
    let seeds = [Seed::from(EXCHANGE_SEED), Seed::from(&bump_seed)];
    create_pda(payer, exchange, Exchange::SPACE, program_id, &seeds)?;

    let mut data = exchange.try_borrow_mut()?;
    let state = init::<Exchange>(&mut data).map_err(ProgramError::from)?;
    state.admin = *admin.address();
    state.operator = *operator.address();
    state.authority = authority;
    state.status = STATUS_ACTIVE;
    state.bump = bump;
    state.authority_bump = authority_bump;
    state.withdrawals = ReplayWindow::default();
    Ok(())
}
