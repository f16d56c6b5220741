//! Borsh decoding of instruction arguments, strict: trailing bytes are refused.

use crate::constants::MAX_SETTLE_ENTRIES;
use crate::error::{Check, ExchangeError};
use pinocchio::Address;

/// A cursor over an instruction's argument bytes (after the discriminator).
pub struct Args<'a> {
    data: &'a [u8],
}

impl<'a> Args<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    fn take<const N: usize>(&mut self) -> Check<[u8; N]> {
        if self.data.len() < N {
            return Err(ExchangeError::InvalidInstructionData);
        }
        let (head, rest) = self.data.split_at(N);
        self.data = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    pub fn u8(&mut self) -> Check<u8> {
        Ok(self.take::<1>()?[0])
    }

    pub fn u64(&mut self) -> Check<u64> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    pub fn address(&mut self) -> Check<Address> {
        Ok(Address::new_from_array(self.take()?))
    }

    /// A Borsh `Vec<i64>` of at most `MAX_SETTLE_ENTRIES` into `out`; returns its length.
    pub fn i64_vec(&mut self, out: &mut [i64; MAX_SETTLE_ENTRIES]) -> Check<usize> {
        let len = u32::from_le_bytes(self.take()?) as usize;
        if len > MAX_SETTLE_ENTRIES {
            return Err(ExchangeError::TooManyEntries);
        }
        for slot in out.iter_mut().take(len) {
            *slot = i64::from_le_bytes(self.take()?);
        }
        Ok(len)
    }

    /// Refuse bytes left after the last argument.
    pub fn end(self) -> Check {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(ExchangeError::InvalidInstructionData)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_borsh_in_order_and_refuses_short_or_long_data() {
        let mut data = [0u8; 17];
        data[..8].copy_from_slice(&7u64.to_le_bytes());
        data[8] = 1;
        data[9..].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut args = Args::new(&data);
        assert_eq!(args.u64(), Ok(7));
        assert_eq!(args.u8(), Ok(1));
        assert_eq!(args.u64(), Ok(u64::MAX));
        assert_eq!(args.end(), Ok(()));
        assert_eq!(
            Args::new(&data[..3]).u64(),
            Err(ExchangeError::InvalidInstructionData)
        );
        assert_eq!(
            Args::new(&data).end(),
            Err(ExchangeError::InvalidInstructionData)
        );
    }

    #[test]
    fn a_vec_longer_than_the_bound_is_refused_before_reading_it() {
        let mut out = [0i64; MAX_SETTLE_ENTRIES];
        let data = (MAX_SETTLE_ENTRIES as u32 + 1).to_le_bytes();
        assert_eq!(
            Args::new(&data).i64_vec(&mut out),
            Err(ExchangeError::TooManyEntries)
        );
        let mut data = [0u8; 12];
        data[..4].copy_from_slice(&1u32.to_le_bytes());
        data[4..].copy_from_slice(&(-3i64).to_le_bytes());
        let mut args = Args::new(&data);
        assert_eq!(args.i64_vec(&mut out), Ok(1));
        assert_eq!(out[0], -3);
    }
}
