#pragma once

// Trains the built-in demo's tiny base model: a real Stable Diffusion 1.x architecture (the
// project's UNetModel, AutoencoderKL and CLIP text encoder, built small) on procedurally drawn,
// captioned plain scenes (core/demo/ShapeScenes.h), and writes it in the ldm layout that the
// normal loader reads: demo.safetensors (F16), demo.yaml, vocab.json and merges.txt.
//
// Two stages: (1) the VAE as an autoencoder (MSE reconstruction plus a small KL term), with a
// downsampling factor of 4 (64x64 pictures -> 16x16 latents); the latent scale factor is then
// measured as 1 / std of posterior samples, as LatentDiffusion's scale_by_std does.
// (2) UNet eps-prediction on scaled latents with the DDPM linear schedule, conditioned on the
// text encoder's last hidden state for the caption; the text encoder is trained jointly with
// the UNet (a randomly initialised one maps the few caption words to contexts the UNet cannot
// tell apart well, and nothing else trains it), and 10% of captions are dropped to "" so that
// classifier-free guidance has an unconditional prediction to work with.
//
// Determinism: module initialisation draws from LibTorch's global generator, which
// trainDemoModel seeds with at::manual_seed(seed); scenes, noise, timesteps and caption dropout
// come from its own generator seeded from `seed`. Same seed and thread count -> same file.

#include <QString>

#include <cstdint>
#include <functional>
#include <vector>

namespace studio::demo {

struct DemoModelOptions
{
    int vaeSteps = 1500;
    int unetSteps = 4000;
    uint64_t seed = 0;
    int size = 64; // picture side; a multiple of 16
    // Side of the random square windows the VAE trains on (0: half of `size`). The VAE has no
    // attention, so it learns from windows what it applies to whole pictures at a quarter of
    // the cost. A multiple of 8, at most `size`.
    int vaeCropSize = 0;
    int batchSize = 16;
    double vaeLearningRate = 1e-3;
    double unetLearningRate = 5e-4; // decays along a half cosine to a tenth by the end
    int logEvery = 50;              // steps between two loss lines
    double captionDropout = 0.1;
    // Receives each loss line ("vae step 50/1500 loss 0.0123"); may be empty.
    std::function<void(const QString&)> log;
};

struct DemoModelResult
{
    std::vector<double> vaeLosses;  // one per step
    std::vector<double> unetLosses; // one per step
    double scaleFactor = 0.0;
    QString checkpointPath; // OUT_DIR/demo.safetensors
    QString yamlPath;       // OUT_DIR/demo.yaml
    qint64 checkpointBytes = 0;
};

// Trains and writes the four files into `outDir` (created when missing; files replaced
// atomically). Throws studio::Error naming the option or file when an option is out of range
// or a file cannot be written.
DemoModelResult trainDemoModel(const QString& outDir, const DemoModelOptions& options);

// The mean of `losses` over the first (or last) `window` entries.
double meanLoss(const std::vector<double>& losses, size_t window, bool last);

} // namespace studio::demo
