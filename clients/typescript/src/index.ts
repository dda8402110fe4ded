export { PreflightClient } from './preflight.js';
export type { PreflightClientOptions, PreflightParams, PreflightStats } from './preflight.js';
export { TokenStatusPublisher } from './token-status.js';
export type { TokenStatusPublisherOptions, TokenStatusChange, PublishedTokenStatus } from './token-status.js';
export { CorrectionsConsumer } from './corrections.js';
export type {
  CorrectionsConsumerOptions,
  CorrectionContext,
  CorrectionsStats,
  InvalidCorrection,
  RetryOptions,
} from './corrections.js';
export { hashToCurve, hashToCurveBytes, yOf, isValidY, yPrefix } from './cashu.js';
export { proofsDigest } from './digest.js';
export { normaliseMintUrl } from './mint-url.js';
export { toProofRef, toMeltProofRef, toAmount } from './proofs.js';
export type { ProofInput, CashuProofInput, ProofRefInput, ProofRef, MeltProofRef, AmountLike } from './proofs.js';
export { partitionForKey, npubKey, kafkaClient } from './kafka.js';
export type { KafkaLike } from './kafka.js';
export { validateContract } from './validation.js';
export type { ContractName, ValidationResult } from './validation.js';
export { jsonLogger, silentLogger } from './logger.js';
export type { Logger } from './logger.js';
export {
  ProofreconClientError,
  PreflightTimeoutError,
  PreflightRequestError,
  PreflightPublishError,
  PreflightClosedError,
  ContractViolationError,
  VersionRegressionError,
} from './errors.js';
export { DEFAULT_TOPICS, topicsFromEnv, isCleared } from './types.js';
export type * from './types.js';
