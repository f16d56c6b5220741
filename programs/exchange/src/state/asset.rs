//! `Asset`: one per mint, at the `["asset", mint]` PDA.

use super::{bucket, Layout};
use crate::constants::account;
use pinocchio::Address;

/// A mint the exchange holds, its fee vault and its rolling outflow cap (104 bytes
/// after the discriminator). Integers are little-endian byte arrays (alignment 1).
#[repr(C)]
pub struct Asset {
    pub mint: Address,
    /// The `["fee", mint]` token account, owned by the vault authority.
    pub fee_vault: Address,
    cap_atoms: [u8; 8],
    window_slots: [u8; 8],
    used_atoms: [u8; 8],
    last_slot: [u8; 8],
    /// The mint's decimals, copied at `add_asset`.
    pub decimals: u8,
    /// Bump of the `["asset", mint]` PDA.
    pub bump: u8,
    /// Bump of the `["fee", mint]` PDA.
    pub fee_vault_bump: u8,
    pub padding: [u8; 5],
}

// SAFETY: repr(C) over byte arrays only; 32 * 2 + 8 * 4 + 8 bytes, no padding.
unsafe impl Layout for Asset {
    const DISCRIMINATOR: [u8; 8] = account::ASSET;
}

impl Asset {
    /// Atoms the operator alone may withdraw per window.
    pub fn cap_atoms(&self) -> u64 {
        u64::from_le_bytes(self.cap_atoms)
    }

    /// The window over which `cap_atoms` drains, in slots (never zero).
    pub fn window_slots(&self) -> u64 {
        u64::from_le_bytes(self.window_slots)
    }

    /// Atoms counted in the bucket as of `last_slot`.
    pub fn used_atoms(&self) -> u64 {
        u64::from_le_bytes(self.used_atoms)
    }

    /// The slot of the bucket's last update.
    pub fn last_slot(&self) -> u64 {
        u64::from_le_bytes(self.last_slot)
    }

    /// Set the cap and its window (the caller has checked `window_slots > 0`).
    pub fn set_cap(&mut self, cap_atoms: u64, window_slots: u64) {
        self.cap_atoms = cap_atoms.to_le_bytes();
        self.window_slots = window_slots.to_le_bytes();
    }

    /// Drain the bucket up to `slot` with the current cap, and make `slot` its time.
    pub fn drain_to(&mut self, slot: u64) {
        let elapsed = slot.saturating_sub(self.last_slot());
        let used = bucket::drained(
            self.used_atoms(),
            self.cap_atoms(),
            self.window_slots(),
            elapsed,
        );
        self.used_atoms = used.to_le_bytes();
        self.last_slot = slot.max(self.last_slot()).to_le_bytes();
    }

    /// Record `used_atoms` after an admitted withdrawal.
    pub fn set_used(&mut self, used_atoms: u64) {
        self.used_atoms = used_atoms.to_le_bytes();
    }
}
