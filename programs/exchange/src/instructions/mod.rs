//! One module per instruction: its account checks and its handler.

pub mod add_asset;
pub mod add_market;
pub mod initialize;
pub mod register_vault;
pub mod rotate_authorities;
pub mod settle;
pub mod update_asset;
pub mod update_exchange;
pub mod withdraw;
pub mod withdraw_approved;

use crate::error::ExchangeError;
use crate::state::{load, load_mut, Layout};
use pinocchio::{
    account::{Ref, RefMut},
    cpi::{Seed, Signer},
    error::ProgramError,
    sysvars::{get_sysvar, rent::RENT_ID},
    AccountView, Address, ProgramResult,
};
use pinocchio_system::instructions::{Allocate, Assign, CreateAccount, Transfer};

/// Bytes the runtime counts per account on top of its data, for rent.
const ACCOUNT_STORAGE_OVERHEAD: u64 = 128;

/// Borrow a config account of this program as `T` (owner, size and discriminator
/// checked). Only this program creates such accounts, and only at their PDA, so these
/// checks stand for the PDA's.
pub(crate) fn config<'a, T: Layout>(
    account: &'a AccountView,
    program_id: &Address,
) -> Result<Ref<'a, T>, ProgramError> {
    if !account.owned_by(program_id) {
        return Err(ExchangeError::WrongAccountOwner.into());
    }
    Ref::try_map(account.try_borrow()?, load::<T>).map_err(|(_, e)| e.into())
}

/// Borrow a config account of this program mutably as `T` (also checks it is writable).
pub(crate) fn config_mut<'a, T: Layout>(
    account: &'a mut AccountView,
    program_id: &Address,
) -> Result<RefMut<'a, T>, ProgramError> {
    crate::checks::writable(account)?;
    if !account.owned_by(program_id) {
        return Err(ExchangeError::WrongAccountOwner.into());
    }
    RefMut::try_map(account.try_borrow_mut()?, load_mut::<T>).map_err(|(_, e)| e.into())
}

/// Create `target` (a PDA signed for by `seeds`) with `space` bytes owned by `owner`,
/// rent-exempt, paid by `payer`.
///
/// Addresses are public before their accounts exist (a vault is a user's deposit
/// address), and the System program refuses to create an account that already holds
/// lamports: anyone could block an account for ever by sending it a few. Such an account
/// is topped up, allocated and assigned instead, which only the PDA's signature can do.
pub(crate) fn create_pda(
    payer: &AccountView,
    target: &AccountView,
    space: usize,
    owner: &Address,
    seeds: &[Seed],
) -> ProgramResult {
    let lamports = minimum_balance(space)?;
    let signer = [Signer::from(seeds)];
    if target.lamports() == 0 {
        let create = CreateAccount {
            from: payer,
            to: target,
            lamports,
            space: space as u64,
            owner,
        };
        return create.invoke_signed(&signer);
    }
    let missing = lamports.saturating_sub(target.lamports());
    if missing > 0 {
        Transfer {
            from: payer,
            to: target,
            lamports: missing,
        }
        .invoke()?;
    }
    Allocate {
        account: target,
        space: space as u64,
    }
    .invoke_signed(&signer)?;
    Assign {
        account: target,
        owner,
    }
    .invoke_signed(&signer)
}

/// The rent-exempt minimum for `space` bytes, by the runtime's formula over the Rent
/// sysvar's full layout (`lamports_per_byte_year: u64`, `exemption_threshold: f64`).
///
/// pinocchio 0.12's `Rent` reads only the first field (the layout after SIMD-0194,
/// where the threshold is 1.0); with today's threshold of 2.0 (LiteSVM, mainnet) it
/// asked for half and the runtime refused the new account.
fn minimum_balance(space: usize) -> Result<u64, ProgramError> {
    let mut raw = [0u8; 16];
    get_sysvar(&mut raw, &RENT_ID, 0)?;
    let (per_byte_year, threshold) = raw.split_at(8);
    let per_byte_year = u64::from_le_bytes(per_byte_year.try_into().unwrap_or_default());
    let threshold = f64::from_le_bytes(threshold.try_into().unwrap_or_default());
    let bytes = ACCOUNT_STORAGE_OVERHEAD + space as u64;
    let base = bytes
        .checked_mul(per_byte_year)
        .ok_or(ExchangeError::ArithmeticOverflow)?;
    // The runtime's own formula, in f64 as it computes it.
    Ok((base as f64 * threshold) as u64)
}
