//! Account checks shared by the instructions; each failure has its own error code.

use crate::constants::{MINT_LEN, SYSTEM_PROGRAM_ID, TOKEN_ACCOUNT_LEN, TOKEN_PROGRAM_ID};
use crate::error::{Check, ExchangeError};
use crate::state::{load, Exchange, Layout};
use pinocchio::{AccountView, Address};

/// `account` signed, else `missing`.
pub fn signer(account: &AccountView, missing: ExchangeError) -> Check {
    if account.is_signer() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// `account` was passed writable.
pub fn writable(account: &AccountView) -> Check {
    if account.is_writable() {
        Ok(())
    } else {
        Err(ExchangeError::AccountNotWritable)
    }
}

/// `account` is the exchange's admin and signed.
pub fn admin(account: &AccountView, exchange: &Exchange) -> Check {
    signer(account, ExchangeError::AdminSignatureMissing)?;
    if account.address() != &exchange.admin {
        return Err(ExchangeError::WrongAdmin);
    }
    Ok(())
}

/// `account` is the exchange's operator and signed.
pub fn operator(account: &AccountView, exchange: &Exchange) -> Check {
    signer(account, ExchangeError::OperatorSignatureMissing)?;
    if account.address() != &exchange.operator {
        return Err(ExchangeError::WrongOperator);
    }
    Ok(())
}

/// `account` is the vault authority PDA recorded in the exchange.
pub fn authority(account: &AccountView, exchange: &Exchange) -> Check {
    if account.address() != &exchange.authority {
        return Err(ExchangeError::AuthorityPdaMismatch);
    }
    Ok(())
}

/// `account` is the SPL Token program.
pub fn token_program(account: &AccountView) -> Check {
    if account.address() != &TOKEN_PROGRAM_ID {
        return Err(ExchangeError::WrongTokenProgram);
    }
    Ok(())
}

/// `account` is the System program.
pub fn system_program(account: &AccountView) -> Check {
    if account.address() != &SYSTEM_PROGRAM_ID {
        return Err(ExchangeError::WrongSystemProgram);
    }
    Ok(())
}

/// `account` is a config account of this program holding a `T` (owner, size and
/// discriminator). Only this program creates such accounts, and only at their PDA.
pub fn owned<T: Layout>(account: &AccountView, program_id: &Address) -> Check {
    if !account.owned_by(program_id) {
        return Err(ExchangeError::WrongAccountOwner);
    }
    let data = account
        .try_borrow()
        .map_err(|_| ExchangeError::WrongAccountType)?;
    load::<T>(&data).map(|_| ())
}

/// `account` does not exist yet (no data, not owned by this program).
pub fn uninitialized(account: &AccountView, program_id: &Address) -> Check {
    if account.owned_by(program_id) || !account.is_data_empty() {
        return Err(ExchangeError::AlreadyInitialized);
    }
    Ok(())
}

/// `account` is the PDA of `seeds`; returns its bump.
pub fn pda(
    account: &AccountView,
    seeds: &[&[u8]],
    program_id: &Address,
    mismatch: ExchangeError,
) -> Check<u8> {
    let (address, bump) = Address::find_program_address(seeds, program_id);
    if account.address() != &address {
        return Err(mismatch);
    }
    Ok(bump)
}

/// The fields of an SPL token account the program reads.
pub struct TokenAccount {
    pub mint: Address,
    pub owner: Address,
    pub amount: u64,
}

/// SPL token account state: 0 uninitialised, 1 initialised, 2 frozen.
const TOKEN_STATE_FROZEN: u8 = 2;

/// Read an initialised SPL token account that can send and receive (not frozen: the
/// token program would refuse the transfer; this says why in the program's own code).
pub fn token_account(account: &AccountView) -> Check<TokenAccount> {
    if !account.owned_by(&TOKEN_PROGRAM_ID) || account.data_len() != TOKEN_ACCOUNT_LEN {
        return Err(ExchangeError::NotATokenAccount);
    }
    let data = account
        .try_borrow()
        .map_err(|_| ExchangeError::NotATokenAccount)?;
    // Layout: mint 0..32, owner 32..64, amount 64..72, ..., state at 108 (0 = uninit).
    match data[108] {
        0 => return Err(ExchangeError::NotATokenAccount),
        TOKEN_STATE_FROZEN => return Err(ExchangeError::TokenAccountFrozen),
        _ => {}
    }
    let mut amount = [0u8; 8];
    amount.copy_from_slice(&data[64..72]);
    Ok(TokenAccount {
        mint: address_at(&data, 0),
        owner: address_at(&data, 32),
        amount: u64::from_le_bytes(amount),
    })
}

/// The decimals of an initialised SPL mint.
pub fn mint_decimals(account: &AccountView) -> Check<u8> {
    if !account.owned_by(&TOKEN_PROGRAM_ID) || account.data_len() != MINT_LEN {
        return Err(ExchangeError::InvalidMint);
    }
    let data = account
        .try_borrow()
        .map_err(|_| ExchangeError::InvalidMint)?;
    // Layout: ..., decimals at 44, is_initialized at 45.
    if data[45] != 1 {
        return Err(ExchangeError::InvalidMint);
    }
    Ok(data[44])
}

fn address_at(data: &[u8], offset: usize) -> Address {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&data[offset..offset + 32]);
    Address::new_from_array(bytes)
}
