//! `update_asset(cap_atoms, window_slots)`: the admin changes an asset's outflow cap.
//! The bucket first drains up to now under the old cap, so the change is not
//! retroactive.
//!
//! Accounts: admin (signer), exchange, asset (w).

use super::{config, config_mut};
use crate::args::Args;
use crate::checks;
use crate::error::ExchangeError;
use crate::state::{Asset, Exchange};
use pinocchio::{
    sysvars::{clock::Clock, Sysvar},
    AccountView, Address, ProgramResult,
};

pub fn handler(program_id: &Address, accounts: &mut [AccountView], args: &[u8]) -> ProgramResult {
    let mut args = Args::new(args);
    let (cap_atoms, window_slots) = (args.u64()?, args.u64()?);
    args.end()?;
    let [admin, exchange, asset, ..] = accounts else {
        return Err(ExchangeError::NotEnoughAccounts.into());
    };
    let exchange = config::<Exchange>(exchange, program_id)?;
    checks::admin(admin, &exchange)?;
    if window_slots == 0 {
        return Err(ExchangeError::InvalidWindow.into());
    }
    let mut asset = config_mut::<Asset>(asset, program_id)?;
    asset.drain_to(Clock::get()?.slot);
    asset.set_cap(cap_atoms, window_slots);
    Ok(())
}
