//! Account layouts and the pure logic they carry (no syscalls, tested natively).
//!
//! Every layout is `repr(C)` over byte arrays: alignment 1 and every bit pattern valid,
//! so a layout is read in place from account data (zero copy) at any offset, and its
//! Borsh encoding (what the IDL describes) is the same bytes in the same order.

pub mod asset;
pub mod bucket;
pub mod exchange;
pub mod market;
pub mod netting;
pub mod replay;

pub use {asset::Asset, exchange::Exchange, market::Market, replay::ReplayWindow};

use crate::error::{Check, ExchangeError};
use core::mem::size_of;

/// An account layout stored after its 8-byte Anchor discriminator.
///
/// # Safety
///
/// Implementors are `repr(C)`, of alignment 1, with no padding and no invalid bit
/// pattern (byte arrays and structs of them only).
pub unsafe trait Layout: Sized {
    /// `sha256("account:<Name>")[..8]`.
    const DISCRIMINATOR: [u8; 8];
    /// The account's full size in bytes, discriminator included.
    const SPACE: usize = 8 + size_of::<Self>();
}

/// View `data` (a whole account's data) as `T`, checking its size and discriminator.
pub fn load<T: Layout>(data: &[u8]) -> Check<&T> {
    if data.len() != T::SPACE || data[..8] != T::DISCRIMINATOR {
        return Err(ExchangeError::WrongAccountType);
    }
    // SAFETY: the size is checked and `T` has alignment 1 and no invalid bit pattern.
    Ok(unsafe { &*(data[8..].as_ptr() as *const T) })
}

/// View `data` mutably as `T`, checking its size and discriminator.
pub fn load_mut<T: Layout>(data: &mut [u8]) -> Check<&mut T> {
    if data.len() != T::SPACE || data[..8] != T::DISCRIMINATOR {
        return Err(ExchangeError::WrongAccountType);
    }
    // SAFETY: as in `load`; the borrow of `data` is exclusive.
    Ok(unsafe { &mut *(data[8..].as_mut_ptr() as *mut T) })
}

/// Write `T`'s discriminator into freshly created, zeroed `data` and view it as `T`.
pub fn init<T: Layout>(data: &mut [u8]) -> Check<&mut T> {
    if data.len() != T::SPACE {
        return Err(ExchangeError::WrongAccountType);
    }
    data[..8].copy_from_slice(&T::DISCRIMINATOR);
    load_mut(data)
}
