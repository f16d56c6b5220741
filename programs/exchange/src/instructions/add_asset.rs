//! `add_asset(cap_atoms, window_slots)`: accept a mint, create its `Asset` config and
//! its fee vault token account (owned by the vault authority).
//!
//! Accounts: admin (signer), payer (signer, w), exchange, asset (w), mint, fee vault (w),
//! vault authority, token program, system program.

use super::{config, create_pda};
use crate::args::Args;
use crate::checks;
use crate::constants::{ASSET_SEED, FEE_SEED, TOKEN_ACCOUNT_LEN, TOKEN_PROGRAM_ID};
use crate::error::ExchangeError;
use crate::state::{init, Asset, Exchange, Layout};
use pinocchio::{cpi::Seed, error::ProgramError, AccountView, Address, ProgramResult};
use pinocchio_token::instructions::InitializeAccount3;

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    let mut args = Args::new(args);
    let (cap_atoms, window_slots) = (args.u64()?, args.u64()?);
    args.end()?;
    let [admin, payer, exchange, asset, mint, fee_vault, authority, token_program, system_program, ..] =
        accounts
    else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    let exchange = config::<Exchange>(exchange, program_id)?;
    checks::admin(admin, &exchange)?;
    checks::signer(payer, ExchangeError::PayerSignatureMissing)?;
    checks::writable(payer)?;
    checks::authority(authority, &exchange)?;
    checks::token_program(token_program)?;
    checks::system_program(system_program)?;
    if window_slots == 0 {
        return Err(ExchangeError::InvalidWindow.into());
    }
    let decimals = checks::mint_decimals(mint)?;
    let mint_key = mint.address().as_ref();
    checks::writable(asset)?;
    let bump = checks::pda(
        asset,
        &[ASSET_SEED, mint_key],
        program_id,
        ExchangeError::AssetPdaMismatch,
    )?;
    checks::uninitialized(asset, program_id)?;
    checks::writable(fee_vault)?;
    let fee_bump = checks::pda(
        fee_vault,
        &[FEE_SEED, mint_key],
        program_id,
        ExchangeError::FeeVaultPdaMismatch,
    )?;
    checks::uninitialized(fee_vault, program_id)?;

    let bump_seed = [bump];
    let seeds = [
        Seed::from(ASSET_SEED),
        Seed::from(mint_key),
        Seed::from(&bump_seed),
    ];
    create_pda(payer, asset, Asset::SPACE, program_id, &seeds)?;
    let fee_bump_seed = [fee_bump];
    let fee_seeds = [
        Seed::from(FEE_SEED),
        Seed::from(mint_key),
        Seed::from(&fee_bump_seed),
    ];
    create_pda(
        payer,
        fee_vault,
        TOKEN_ACCOUNT_LEN,
        &TOKEN_PROGRAM_ID,
        &fee_seeds,
    )?;
    InitializeAccount3::new(fee_vault, mint, &exchange.authority).invoke()?;

    let mut data = asset.try_borrow_mut()?;
    let state = init::<Asset>(&mut data).map_err(ProgramError::from)?;
    state.mint = *mint.address();
    state.fee_vault = *fee_vault.address();
    state.set_cap(cap_atoms, window_slots);
    state.decimals = decimals;
    state.bump = bump;
    state.fee_vault_bump = fee_bump;
    Ok(())
}
