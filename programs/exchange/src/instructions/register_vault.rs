//! `register_vault(account_id)`: create a user's vault token account for an asset at
//! `["vault", mint, account_id_le8]`, owned by the vault authority. Its address is the
//! user's deposit address: anyone deposits with a plain SPL transfer to it.
//!
//! Accounts: operator (signer, w, pays), exchange, asset, mint, vault (w), vault
//! authority, token program, system program.

use super::{config, create_pda};
use crate::args::Args;
use crate::checks;
use crate::constants::{TOKEN_ACCOUNT_LEN, TOKEN_PROGRAM_ID, VAULT_SEED};
use crate::error::ExchangeError;
use crate::state::{Asset, Exchange};
use pinocchio::{cpi::Seed, AccountView, Address, ProgramResult};
use pinocchio_token::instructions::InitializeAccount3;

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    let mut args = Args::new(args);
    let account_id = args.u64()?;
    args.end()?;
    let [operator, exchange, asset, mint, vault, authority, token_program, system_program, ..] =
        accounts
    else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    let exchange = config::<Exchange>(exchange, program_id)?;
    checks::operator(operator, &exchange)?;
    checks::writable(operator)?;
    checks::authority(authority, &exchange)?;
    checks::token_program(token_program)?;
    checks::system_program(system_program)?;
    if config::<Asset>(asset, program_id)?.mint != *mint.address() {
        return Err(ExchangeError::MintMismatch.into());
    }
    let mint_key = mint.address().as_ref();
    let id_seed = account_id.to_le_bytes();
    checks::writable(vault)?;
    let bump = checks::pda(
        vault,
        &[VAULT_SEED, mint_key, &id_seed],
        program_id,
        ExchangeError::VaultPdaMismatch,
    )?;
    checks::uninitialized(vault, program_id)?;

    let bump_seed = [bump];
    let seeds = [
        Seed::from(VAULT_SEED),
        Seed::from(mint_key),
        Seed::from(&id_seed),
        Seed::from(&bump_seed),
    ];
    create_pda(
        operator,
        vault,
        TOKEN_ACCOUNT_LEN,
        &TOKEN_PROGRAM_ID,
        &seeds,
    )?;
    InitializeAccount3::new(vault, mint, &exchange.authority).invoke()
}
