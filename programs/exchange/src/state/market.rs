//! `Market`: one per market, at the `["market", market_id_le8]` PDA.

use super::{Layout, ReplayWindow};
use crate::constants::account;
use pinocchio::Address;

/// A market's mints and its settlement replay window (216 bytes after the
/// discriminator).
#[repr(C)]
pub struct Market {
    market_id: [u8; 8],
    pub base_mint: Address,
    pub quote_mint: Address,
    /// Reserved for the settlement issue (0 = active); no instruction changes it yet.
    pub status: u8,
    /// Bump of the `["market", market_id]` PDA.
    pub bump: u8,
    pub padding: [u8; 6],
    /// Settlement batch ids applied to this market.
    pub batches: ReplayWindow,
}

// SAFETY: repr(C) over byte arrays only; 8 + 32 * 2 + 8 + 136 bytes, no padding.
unsafe impl Layout for Market {
    const DISCRIMINATOR: [u8; 8] = account::MARKET;
}

impl Market {
    /// The off-chain `markets.market_id`.
    pub fn market_id(&self) -> u64 {
        u64::from_le_bytes(self.market_id)
    }

    /// Set the market id (at creation).
    pub fn set_market_id(&mut self, market_id: u64) {
        self.market_id = market_id.to_le_bytes();
    }

    /// The group of `mint` in a settlement (0 base, 1 quote), if it is one of the two.
    pub fn group_of(&self, mint: &Address) -> Option<u8> {
        if mint == &self.base_mint {
            Some(0)
        } else if mint == &self.quote_mint {
            Some(1)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Asset, Exchange, Layout};
    use super::*;

    #[test]
    fn layouts_have_the_sizes_the_idl_describes() {
        assert_eq!(Exchange::SPACE, 248);
        assert_eq!(Asset::SPACE, 112);
        assert_eq!(Market::SPACE, 224);
        assert_eq!(core::mem::align_of::<Exchange>(), 1);
        assert_eq!(core::mem::align_of::<Asset>(), 1);
        assert_eq!(core::mem::align_of::<Market>(), 1);
    }
}
