//! PDA seeds, Anchor discriminators, program ids and the bounds every loop respects.

use pinocchio::Address;

/// Seed of the exchange config PDA: `["exchange"]`.
pub const EXCHANGE_SEED: &[u8] = b"exchange";
/// Seed of the vault authority PDA: `["authority"]`, the SPL owner of every vault.
pub const AUTHORITY_SEED: &[u8] = b"authority";
/// Seed of an asset config PDA: `["asset", mint]`.
pub const ASSET_SEED: &[u8] = b"asset";
/// Seed of a fee vault token account PDA: `["fee", mint]`.
pub const FEE_SEED: &[u8] = b"fee";
/// Seed of a user vault token account PDA: `["vault", mint, account_id_le8]`.
pub const VAULT_SEED: &[u8] = b"vault";
/// Seed of a market config PDA: `["market", market_id_le8]`.
pub const MARKET_SEED: &[u8] = b"market";

/// The SPL Token program (classic; Token-2022 mints are not accepted).
pub const TOKEN_PROGRAM_ID: Address = pinocchio_token::ID;
/// The System program.
pub const SYSTEM_PROGRAM_ID: Address = Address::new_from_array([0; 32]);

/// Size of an SPL token account, in bytes.
pub const TOKEN_ACCOUNT_LEN: usize = 165;
/// Size of an SPL mint, in bytes.
pub const MINT_LEN: usize = 82;

/// Exchange status: withdrawals and settlements run.
pub const STATUS_ACTIVE: u8 = 0;
/// Exchange status: withdrawals and settlements fail `ExchangeHalted`.
pub const STATUS_HALTED: u8 = 1;

/// Ids a replay window remembers from its base. 1,024 bits cost 128 bytes of account
/// data; an id more than this far behind the newest one is refused as too old.
pub const REPLAY_WINDOW_IDS: u64 = 1024;

/// Entries one `settle` accepts. Bound by the transaction: each entry is a 32-byte
/// account key plus an 8-byte delta, so about 25 fit the 1,232-byte packet without an
/// address lookup table; 32 leaves room for tables while the greedy transfers (at most
/// `entries - 2` CPIs of about 4,500 CU each) stay far under the 1.4M CU limit.
pub const MAX_SETTLE_ENTRIES: usize = 32;

/// Anchor instruction discriminators: `sha256("global:<snake_name>")[..8]`.
pub mod ix {
    pub const INITIALIZE: [u8; 8] = [175, 175, 109, 31, 13, 152, 155, 237];
    pub const ADD_ASSET: [u8; 8] = [81, 53, 134, 142, 243, 73, 42, 179];
    pub const ADD_MARKET: [u8; 8] = [41, 137, 185, 126, 69, 139, 254, 55];
    pub const REGISTER_VAULT: [u8; 8] = [121, 62, 4, 122, 93, 231, 119, 49];
    pub const WITHDRAW: [u8; 8] = [183, 18, 70, 156, 148, 109, 161, 34];
    pub const WITHDRAW_APPROVED: [u8; 8] = [229, 143, 160, 199, 184, 7, 135, 7];
    pub const SETTLE: [u8; 8] = [175, 42, 185, 87, 144, 131, 102, 212];
    pub const UPDATE_EXCHANGE: [u8; 8] = [253, 125, 43, 73, 145, 27, 234, 194];
    pub const UPDATE_ASSET: [u8; 8] = [56, 126, 238, 138, 192, 118, 228, 172];
    pub const ROTATE_AUTHORITIES: [u8; 8] = [163, 56, 249, 242, 156, 15, 235, 120];
}

/// Anchor account discriminators: `sha256("account:<Name>")[..8]`.
pub mod account {
    pub const EXCHANGE: [u8; 8] = [30, 200, 220, 149, 3, 61, 104, 50];
    pub const ASSET: [u8; 8] = [234, 180, 241, 252, 139, 224, 160, 8];
    pub const MARKET: [u8; 8] = [219, 190, 213, 55, 0, 227, 198, 154];
}

#[cfg(test)]
mod tests {
    use super::{account, ix};
    use sha2::{Digest, Sha256};

    fn discriminator(preimage: &str) -> [u8; 8] {
        let mut out = [0u8; 8];
        out.copy_from_slice(&Sha256::digest(preimage.as_bytes())[..8]);
        out
    }

    #[test]
    fn instruction_discriminators_are_anchors() {
        let table = [
            ("initialize", ix::INITIALIZE),
            ("add_asset", ix::ADD_ASSET),
            ("add_market", ix::ADD_MARKET),
            ("register_vault", ix::REGISTER_VAULT),
            ("withdraw", ix::WITHDRAW),
            ("withdraw_approved", ix::WITHDRAW_APPROVED),
            ("settle", ix::SETTLE),
            ("update_exchange", ix::UPDATE_EXCHANGE),
            ("update_asset", ix::UPDATE_ASSET),
            ("rotate_authorities", ix::ROTATE_AUTHORITIES),
        ];
        for (name, value) in table {
            assert_eq!(discriminator(&format!("global:{name}")), value, "{name}");
        }
    }

    #[test]
    fn account_discriminators_are_anchors() {
        assert_eq!(discriminator("account:Exchange"), account::EXCHANGE);
        assert_eq!(discriminator("account:Asset"), account::ASSET);
        assert_eq!(discriminator("account:Market"), account::MARKET);
    }
}
