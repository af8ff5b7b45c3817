extension TrainingConfiguration {
    /// Sample-level DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, Algorithm 1, as
    /// Opacus implements it) with the **patient** as the privacy unit: all slices (or patches) of one patient form
    /// one example, so the guarantee covers adding or removing a whole patient from the site's training set.
    ///
    /// One step: draw a lot of patients (`sampling`), compute each sampled patient's gradient on its own micro-batch
    /// of `slicesPerPatient` slices/patches, clip it to L2 norm `maxGradNorm` (C) over all parameters, sum over the
    /// lot, add N(0, σ²C²) to every coordinate (σ = `noiseMultiplier`), divide by the expected lot size B =
    /// `patientsPerStep`, and take the optimiser step. An epoch is round(N / B) steps (at least 1), N the site's
    /// training patients; the sampling rate the accountant uses is q = B / N.
    ///
    /// With DP-SGD, `training.batch_size` and `training.gradient_clip_norm` do not apply, and `slices_per_epoch` /
    /// `patches_per_epoch` neither (an epoch is round(N / B) lots). The privacy loss (ε for a δ) is not computed
    /// here: the site's accountant charges it from `DPSGDRecord`.
    ///
    /// Lots are drawn from the trainer's seeded generator (`training.seed`, per round), so a run is reproducible.
    /// Amplification by subsampling assumes the adversary does not know which patients were in a lot; a party that
    /// knows the seed *and* the site's list of training patients could reconstruct the lots. The seed alone does not
    /// reveal them (the order of patients comes from their IDs), but a site that wants the assumption to hold without
    /// that argument should mix site-secret randomness into the seed.
    public struct DPSGD: Sendable, Equatable {
        /// How a lot of patients is drawn for a step.
        public enum Sampling: String, Sendable, Codable, CaseIterable {
            /// Every training patient joins a step independently with probability q = B / N (the lot size varies;
            /// the subsampled Gaussian mechanism the accountants analyse, Mironov et al. 2019).
            case poisson
            /// Exactly B distinct patients, uniformly without replacement. Accounting it with q = B / N as if it
            /// were Poisson is the usual approximation (as most DP-SGD code does), not an exact bound.
            case fixed
        }

        /// σ: the noise standard deviation is σ · C on the summed clipped gradients (> 0; unitless).
        public var noiseMultiplier: Double
        /// C: per-patient L2 clipping bound over all parameters (> 0; in the units of the loss gradient).
        public var maxGradNorm: Double
        public var sampling: Sampling
        /// B: the expected lot size (patients per step); q = B / N, so B ≤ N.
        public var patientsPerStep: Int
        /// Slices (unet2d) or patches (unet3d) drawn from a sampled patient for its gradient, class-balanced by
        /// `training.foreground_fraction`.
        public var slicesPerPatient: Int

        /// Upper bound of `noise_multiplier` and `max_grad_norm` (as `gradient_clip_norm`'s).
        public static let maxValue = 1e6

        public init(
            noiseMultiplier: Double, maxGradNorm: Double, sampling: Sampling = .poisson,
            patientsPerStep: Int, slicesPerPatient: Int = 4
        ) {
            self.noiseMultiplier = noiseMultiplier
            self.maxGradNorm = maxGradNorm
            self.sampling = sampling
            self.patientsPerStep = patientsPerStep
            self.slicesPerPatient = slicesPerPatient
        }

        /// The sampling rate q = B / N for `trainPatients` = N.
        /// - Throws: `.configuration` naming `training.dp_sgd.patients_per_step` when N < 1 or B > N.
        public func samplingRate(trainPatients: Int) throws(TrainingError) -> Double {
            guard trainPatients >= 1, patientsPerStep <= trainPatients else {
                throw TrainingError(
                    .configuration,
                    "`training.dp_sgd.patients_per_step` is \(patientsPerStep) but "
                        + "the site has \(trainPatients) training patients: it must be at most that "
                        + "(q = B / N ≤ 1); lower it or add patients")
            }
            return Double(patientsPerStep) / Double(trainPatients)
        }

        /// Checks the values: σ and C finite and > 0, B and the slices per patient in 1...`limits.maxBatchSize`
        /// (nil limits: ≥ 1 only, for a configuration already checked by its site).
        /// - Throws: `.configuration` naming the key (`training.dp_sgd.noise_multiplier`).
        public func validate(limits: PipelineLimits?) throws(TrainingError) {
            func fail(_ key: String, _ message: String) -> TrainingError {
                TrainingError(.configuration, "`training.dp_sgd.\(key)` \(message)")
            }
            for (key, value) in [("noise_multiplier", noiseMultiplier), ("max_grad_norm", maxGradNorm)]
            where !(value.isFinite && value > 0 && value <= Self.maxValue) {
                throw fail(key, "is \(value): must be > 0 and at most \(Self.maxValue)")
            }
            let most = limits?.maxBatchSize ?? Int.max
            for (key, value) in [("patients_per_step", patientsPerStep), ("slices_per_patient", slicesPerPatient)]
            where !(1...most).contains(value) {
                let limit = limits == nil ? "" : " (limit max_batch_size)"
                throw fail(key, "is \(value): must be in 1...\(most)\(limit)")
            }
        }
    }
}
