//! `withdraw(withdrawal_id, account_id, amount)`: the operator moves `amount` from a
//! user's vault to a destination token account, within the asset's rolling outflow cap,
//! once per withdrawal id.
//!
//! Accounts: operator (signer), exchange (w: replay window), asset (w: cap), vault (w),
//! destination (w, same mint), vault authority, token program.

use super::config_mut;
use crate::args::Args;
use crate::checks;
use crate::constants::{AUTHORITY_SEED, VAULT_SEED};
use crate::error::{Check, ExchangeError};
use crate::state::{bucket, replay::Replay, Asset, Exchange};
use pinocchio::{
    cpi::{Seed, Signer},
    sysvars::{clock::Clock, Sysvar},
    AccountView, Address, ProgramResult,
};
use pinocchio_token::instructions::Transfer;

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    let [operator, rest @ ..] = accounts else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    run(program_id, operator, None, rest, args)
}

/// The withdrawal shared with `withdraw_approved`: with `admin`, the admin must sign
/// and the cap does not bound it (the amount still counts in the bucket).
pub(crate) fn run(
    program_id: &Address,
    operator: &AccountView,
    admin: Option<&AccountView>,
    accounts: &mut [AccountView],
    args: &[u8],
) -> ProgramResult {
    let mut args = Args::new(args);
    let (withdrawal_id, account_id, amount) = (args.u64()?, args.u64()?, args.u64()?);
    args.end()?;
    let [exchange, asset, vault, destination, authority, token_program, ..] = accounts else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    let authority_bump = {
        let mut exchange = config_mut::<Exchange>(exchange, program_id)?;
        checks::operator(operator, &exchange)?;
        if let Some(admin) = admin {
            checks::admin(admin, &exchange)?;
        }
        if !exchange.is_active() {
            return Err(ExchangeError::ExchangeHalted.into());
        }
        if amount == 0 {
            return Err(ExchangeError::ZeroAmount.into());
        }
        checks::authority(authority, &exchange)?;
        checks::token_program(token_program)?;
        let mut asset = config_mut::<Asset>(asset, program_id)?;
        check_vault(program_id, vault, &exchange, &asset, account_id, amount)?;
        check_destination(destination, &asset)?;
        exchange
            .withdrawals
            .apply(withdrawal_id)
            .map_err(|r| match r {
                Replay::TooOld => ExchangeError::WithdrawalTooOld,
                Replay::AlreadyApplied => ExchangeError::WithdrawalAlreadyApplied,
            })?;
        asset.drain_to(Clock::get()?.slot);
        let used = match admin {
            Some(_) => bucket::admit_approved(asset.used_atoms(), amount),
            None => bucket::admit(asset.used_atoms(), amount, asset.cap_atoms())?,
        };
        asset.set_used(used);
        exchange.authority_bump
    };
    let bump_seed = [authority_bump];
    let seeds = [Seed::from(AUTHORITY_SEED), Seed::from(&bump_seed)];
    Transfer::new(vault, destination, authority, amount).invoke_signed(&[Signer::from(&seeds)])
}

/// The vault is the user's: an SPL account of the asset's mint, owned by the vault
/// authority, at `["vault", mint, account_id]`, holding at least `amount`.
fn check_vault(
    program_id: &Address,
    vault: &AccountView,
    exchange: &Exchange,
    asset: &Asset,
    account_id: u64,
    amount: u64,
) -> Check {
    checks::writable(vault)?;
    let token = checks::token_account(vault)?;
    if token.owner != exchange.authority {
        return Err(ExchangeError::VaultNotOwnedByAuthority);
    }
    if token.mint != asset.mint {
        return Err(ExchangeError::MintMismatch);
    }
    let seeds: [&[u8]; 3] = [VAULT_SEED, asset.mint.as_ref(), &account_id.to_le_bytes()];
    checks::pda(vault, &seeds, program_id, ExchangeError::VaultPdaMismatch)?;
    if token.amount < amount {
        return Err(ExchangeError::InsufficientVaultBalance);
    }
    Ok(())
}

fn check_destination(destination: &AccountView, asset: &Asset) -> Check {
    checks::writable(destination)?;
    if checks::token_account(destination)?.mint != asset.mint {
        return Err(ExchangeError::DestinationMintMismatch);
    }
    Ok(())
}
