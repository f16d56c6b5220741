//! One error enum with stable codes (Anchor's custom range, from 6000). Never reuse a
//! retired number: clients and the IDL's `errors` rely on them.

use pinocchio::error::ProgramError;

/// Every way an instruction of the exchange program can be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExchangeError {
    /// The first 8 bytes name no instruction of this program.
    UnknownInstruction = 6000,
    /// The arguments are not the Borsh encoding the instruction expects.
    InvalidInstructionData = 6001,
    /// Fewer accounts than the instruction lists.
    NotEnoughAccounts = 6002,
    /// The admin did not sign.
    AdminSignatureMissing = 6003,
    /// The signing admin is not the exchange's admin.
    WrongAdmin = 6004,
    /// The operator did not sign.
    OperatorSignatureMissing = 6005,
    /// The signing operator is not the exchange's operator.
    WrongOperator = 6006,
    /// The payer did not sign.
    PayerSignatureMissing = 6007,
    /// The new admin did not sign its rotation.
    NewAdminSignatureMissing = 6008,
    /// An account the instruction writes was passed read-only.
    AccountNotWritable = 6009,
    /// A config account is not owned by this program.
    WrongAccountOwner = 6010,
    /// A config account holds another type (discriminator or size).
    WrongAccountType = 6011,
    /// The exchange account is not the `["exchange"]` PDA.
    ExchangePdaMismatch = 6012,
    /// The vault authority is not the `["authority"]` PDA.
    AuthorityPdaMismatch = 6013,
    /// The asset account is not the `["asset", mint]` PDA.
    AssetPdaMismatch = 6014,
    /// The fee vault is not the `["fee", mint]` PDA.
    FeeVaultPdaMismatch = 6015,
    /// The vault is not the `["vault", mint, account_id]` PDA.
    VaultPdaMismatch = 6016,
    /// The market account is not the `["market", market_id]` PDA.
    MarketPdaMismatch = 6017,
    /// The token program is not SPL Token.
    WrongTokenProgram = 6018,
    /// The system program is not the System program.
    WrongSystemProgram = 6019,
    /// The mint account is not an initialised SPL mint.
    InvalidMint = 6020,
    /// The mint is not the asset's mint.
    MintMismatch = 6021,
    /// A token account is not an initialised SPL token account.
    NotATokenAccount = 6022,
    /// A vault's SPL owner is not the vault authority (a foreign token account).
    VaultNotOwnedByAuthority = 6023,
    /// A vault's mint is neither the market's base nor its quote mint.
    VaultMintNotInMarket = 6024,
    /// The destination token account holds another mint than the asset's.
    DestinationMintMismatch = 6025,
    /// The market's base and quote assets are the same.
    SameBaseAndQuote = 6026,
    /// The status is neither active (0) nor halted (1).
    InvalidStatus = 6027,
    /// The outflow window is zero slots.
    InvalidWindow = 6028,
    /// The amount is zero.
    ZeroAmount = 6029,
    /// The withdrawal would pass the asset's rolling outflow cap: the admin must co-sign.
    OverWithdrawalCap = 6030,
    /// The withdrawal id is below the replay window: refused for ever.
    WithdrawalTooOld = 6031,
    /// The withdrawal id was already applied.
    WithdrawalAlreadyApplied = 6032,
    /// The batch id is below the market's replay window: refused for ever.
    BatchTooOld = 6033,
    /// The batch id was already applied to this market.
    BatchAlreadyApplied = 6034,
    /// The exchange is halted: no withdrawal, no settlement.
    ExchangeHalted = 6035,
    /// A settlement batch has no deltas.
    EmptyBatch = 6036,
    /// A settlement batch has more entries than `MAX_SETTLE_ENTRIES`.
    TooManyEntries = 6037,
    /// The number of deltas differs from the number of vault accounts passed.
    DeltaCountMismatch = 6038,
    /// The deltas of a mint do not sum to zero.
    UnbalancedDeltas = 6039,
    /// The same vault appears twice in one batch.
    DuplicateVault = 6040,
    /// A vault holds less than it must pay.
    InsufficientVaultBalance = 6041,
    /// A sum or product left its integer range.
    ArithmeticOverflow = 6042,
    /// The market id argument differs from the market account's.
    MarketIdMismatch = 6043,
    /// The config account already exists.
    AlreadyInitialized = 6044,
    /// A vault or destination token account is frozen by its mint's freeze authority.
    TokenAccountFrozen = 6045,
}

impl From<ExchangeError> for ProgramError {
    fn from(error: ExchangeError) -> Self {
        ProgramError::Custom(error as u32)
    }
}

/// The result of a pure check, before it becomes a `ProgramError`.
pub type Check<T = ()> = Result<T, ExchangeError>;
