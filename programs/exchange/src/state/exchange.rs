//! `Exchange`: the one config account, at the `["exchange"]` PDA.

use super::{Layout, ReplayWindow};
use crate::constants::{account, STATUS_ACTIVE};
use pinocchio::Address;

/// The exchange's authorities, status and withdrawal replay window (240 bytes after
/// the discriminator).
#[repr(C)]
pub struct Exchange {
    /// The cold key: changes config, rotates keys, co-signs withdrawals over the cap.
    pub admin: Address,
    /// The hot key of the services: registers vaults, withdraws within the cap, settles.
    pub operator: Address,
    /// The `["authority"]` PDA, the SPL owner of every vault (kept to skip a derivation).
    pub authority: Address,
    /// `STATUS_ACTIVE` (0) or `STATUS_HALTED` (1).
    pub status: u8,
    /// Bump of the `["exchange"]` PDA.
    pub bump: u8,
    /// Bump of the `["authority"]` PDA, for its CPI signatures.
    pub authority_bump: u8,
    pub padding: [u8; 5],
    /// Withdrawal ids applied (`withdrawals.withdrawal_id` off chain).
    pub withdrawals: ReplayWindow,
}

// SAFETY: repr(C) over byte arrays only; 32 * 3 + 8 + 136 bytes, no padding.
unsafe impl Layout for Exchange {
    const DISCRIMINATOR: [u8; 8] = account::EXCHANGE;
}

impl Exchange {
    /// Whether withdrawals and settlements may run.
    pub fn is_active(&self) -> bool {
        self.status == STATUS_ACTIVE
    }
}
