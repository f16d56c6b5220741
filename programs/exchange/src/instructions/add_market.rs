//! `add_market(market_id)`: create a `Market` config over two assets.
//!
//! Accounts: admin (signer), payer (signer, w), exchange, market (w), base asset,
//! quote asset, system program.

use super::{config, create_pda};
use crate::args::Args;
use crate::checks;
use crate::constants::MARKET_SEED;
use crate::error::ExchangeError;
use crate::state::{init, Asset, Exchange, Layout, Market, ReplayWindow};
use pinocchio::{cpi::Seed, error::ProgramError, AccountView, Address, ProgramResult};

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    let mut args = Args::new(args);
    let market_id = args.u64()?;
    args.end()?;
    let [admin, payer, exchange, market, base_asset, quote_asset, system_program, ..] = accounts
    else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    let exchange = config::<Exchange>(exchange, program_id)?;
    checks::admin(admin, &exchange)?;
    checks::signer(payer, ExchangeError::PayerSignatureMissing)?;
    checks::writable(payer)?;
    checks::system_program(system_program)?;
    let base_mint = config::<Asset>(base_asset, program_id)?.mint;
    let quote_mint = config::<Asset>(quote_asset, program_id)?.mint;
    if base_mint == quote_mint {
        return Err(ExchangeError::SameBaseAndQuote.into());
    }
    checks::writable(market)?;
    let id_seed = market_id.to_le_bytes();
    let bump = checks::pda(
        market,
        &[MARKET_SEED, &id_seed],
        program_id,
        ExchangeError::MarketPdaMismatch,
    )?;
    checks::uninitialized(market, program_id)?;

    let bump_seed = [bump];
    let seeds = [
        Seed::from(MARKET_SEED),
        Seed::from(&id_seed),
        Seed::from(&bump_seed),
    ];
    create_pda(payer, market, Market::SPACE, program_id, &seeds)?;

    let mut data = market.try_borrow_mut()?;
    let state = init::<Market>(&mut data).map_err(ProgramError::from)?;
    state.set_market_id(market_id);
    state.base_mint = base_mint;
    state.quote_mint = quote_mint;
    state.bump = bump;
    state.batches = ReplayWindow::default();
    Ok(())
}
