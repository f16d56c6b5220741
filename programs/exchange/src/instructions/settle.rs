//! `settle(market_id, batch_id, deltas)`: apply a netted settlement batch: one signed
//! delta per vault (user vaults and fee vaults alike) of the market's base or quote
//! mint; each mint's deltas sum to zero. Tokens move with the greedy transfers of
//! `state::netting`, signed by the vault authority. A batch id applies once per market.
//!
//! Accounts: operator (signer), exchange, market (w: replay window), vault authority,
//! token program, then one token account (w) per delta, in the deltas' order.

use super::{config, config_mut};
use crate::args::Args;
use crate::checks;
use crate::constants::{AUTHORITY_SEED, MAX_SETTLE_ENTRIES};
use crate::error::{Check, ExchangeError};
use crate::state::{netting, replay::Replay, Exchange, Market};
use pinocchio::{
    cpi::{Seed, Signer},
    AccountView, Address, ProgramResult,
};
use pinocchio_token::instructions::Transfer;

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    let mut args = Args::new(args);
    let (market_id, batch_id) = (args.u64()?, args.u64()?);
    let mut deltas = [0i64; MAX_SETTLE_ENTRIES];
    let count = args.i64_vec(&mut deltas)?;
    args.end()?;
    let deltas = &deltas[..count];
    let [operator, exchange, market, authority, token_program, vaults @ ..] = accounts else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    let (plan, authority_bump) = {
        let exchange = config::<Exchange>(exchange, program_id)?;
        checks::operator(operator, &exchange)?;
        if !exchange.is_active() {
            return Err(ExchangeError::ExchangeHalted.into());
        }
        checks::authority(authority, &exchange)?;
        checks::token_program(token_program)?;
        let mut market = config_mut::<Market>(market, program_id)?;
        if market.market_id() != market_id {
            return Err(ExchangeError::MarketIdMismatch.into());
        }
        if deltas.is_empty() {
            return Err(ExchangeError::EmptyBatch.into());
        }
        if vaults.len() != deltas.len() {
            return Err(ExchangeError::DeltaCountMismatch.into());
        }
        let groups = check_vaults(vaults, &exchange, &market, deltas)?;
        let plan = netting::plan(deltas, &groups[..count])?;
        market.batches.apply(batch_id).map_err(|r| match r {
            Replay::TooOld => ExchangeError::BatchTooOld,
            Replay::AlreadyApplied => ExchangeError::BatchAlreadyApplied,
        })?;
        (plan, exchange.authority_bump)
    };
    let bump_seed = [authority_bump];
    let seeds = [Seed::from(AUTHORITY_SEED), Seed::from(&bump_seed)];
    // Bound: a plan holds at most MAX_SETTLE_ENTRIES transfers (one per entry).
    for t in plan.transfers() {
        let (from, to) = (&vaults[t.from as usize], &vaults[t.to as usize]);
        Transfer::new(from, to, authority, t.amount).invoke_signed(&[Signer::from(&seeds)])?;
    }
    Ok(())
}

/// Check every vault and return its group (0 base, 1 quote): writable, an SPL account
/// owned by the vault authority, of one of the market's mints, able to pay its debit,
/// and not passed twice.
fn check_vaults(
    vaults: &[AccountView],
    exchange: &Exchange,
    market: &Market,
    deltas: &[i64],
) -> Check<[u8; MAX_SETTLE_ENTRIES]> {
    let mut groups = [0u8; MAX_SETTLE_ENTRIES];
    // Bound: the caller checked `vaults.len() == deltas.len() <= MAX_SETTLE_ENTRIES`.
    for (i, (vault, delta)) in vaults.iter().zip(deltas).enumerate() {
        checks::writable(vault)?;
        let token = checks::token_account(vault)?;
        if token.owner != exchange.authority {
            return Err(ExchangeError::VaultNotOwnedByAuthority);
        }
        groups[i] = market
            .group_of(&token.mint)
            .ok_or(ExchangeError::VaultMintNotInMarket)?;
        if *delta < 0 && token.amount < delta.unsigned_abs() {
            return Err(ExchangeError::InsufficientVaultBalance);
        }
        if vaults[..i].iter().any(|v| v.address() == vault.address()) {
            return Err(ExchangeError::DuplicateVault);
        }
    }
    Ok(groups)
}
