//! The exchange's custody program: user vaults, capped withdrawals and netted
//! settlement, in Anchor's wire format (8-byte discriminators, Borsh arguments) on
//! pinocchio. The IDL is `idl/exchange.json`; `programs/README.md` explains why.
#![cfg_attr(not(test), no_std)]

pub mod args;
pub mod checks;
pub mod constants;
pub mod error;
pub mod instructions;
pub mod state;

use constants::ix;
use error::ExchangeError;
use instructions::*;
use pinocchio::{AccountView, Address, ProgramResult};

/// Accounts the entrypoint reads: `settle`'s five plus its entries. More are ignored,
/// which `settle` reports as `DeltaCountMismatch`.
pub const MAX_ACCOUNTS: usize = 5 + constants::MAX_SETTLE_ENTRIES;

#[cfg(target_arch = "bpf")]
mod entrypoint {
    use solana_compiler_builtins as _;

    pinocchio::program_entrypoint!(crate::process_instruction, { crate::MAX_ACCOUNTS });
    pinocchio::no_allocator!();
    pinocchio::nostd_panic_handler!();
}

/// Route an instruction by its 8-byte Anchor discriminator.
#[inline(never)]
pub fn process_instruction(
    program_id: &Address,
    accounts: &mut [AccountView],
    data: &[u8],
) -> ProgramResult {
    let Some((discriminator, args)) = data.split_first_chunk::<8>() else {
        return Err(ExchangeError::UnknownInstruction.into());
    };
    let handler = match *discriminator {
        // Create the exchange config: admin, operator, the vault authority PDA.
        ix::INITIALIZE => initialize::handler,
        // Accept a mint: its config, cap and fee vault (admin).
        ix::ADD_ASSET => add_asset::handler,
        // Create a market over two assets (admin).
        ix::ADD_MARKET => add_market::handler,
        // Create a user's vault (deposit address) for an asset (operator).
        ix::REGISTER_VAULT => register_vault::handler,
        // Pay a withdrawal within the rolling cap (operator).
        ix::WITHDRAW => withdraw::handler,
        // Pay a withdrawal over the cap (operator and admin).
        ix::WITHDRAW_APPROVED => withdraw_approved::handler,
        // Apply a netted settlement batch once (operator).
        ix::SETTLE => settle::handler,
        // Halt or resume (admin).
        ix::UPDATE_EXCHANGE => update_exchange::handler,
        // Change an asset's cap (admin).
        ix::UPDATE_ASSET => update_asset::handler,
        // Set the admin and the operator (admin and new admin).
        ix::ROTATE_AUTHORITIES => rotate_authorities::handler,
        _ => return Err(ExchangeError::UnknownInstruction.into()),
    };
    handler(program_id, accounts, args)
}
