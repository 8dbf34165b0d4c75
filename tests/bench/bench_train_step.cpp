// Seconds per step and peak memory of a hypernetwork training step (UNet forward with the
// hypernetwork in train mode, MSE against the noise, backward to the hypernetwork, AdamW step)
// on the tiny reference model and on an SD1.5-shaped UNet (random weights), and the fraction
// of this machine's measured matmul / convolution peak that the step reaches.
//
//     bench_train_step [--model tiny|sd15|both] [--size N] [--threads N] [--steps N]
//                      [--attention plain|sliced|sdpa] [--checkpointing] [--no-peak]
//
// The step's arithmetic is counted, not assumed: forward FLOPs of every convolution, linear
// layer and attention product are added up from the shapes the UNet sees, and the backward pass
// (input gradients only: the UNet is frozen) is counted as the same amount again, plus the
// hypernetwork's small weight gradients. Each model runs in a child process (this program again
// with --child) so that its peak RSS is its own.

#include "ProcessMemory.h"

#include "core/CpuRuntime.h"
#include "core/Error.h"
#include "core/diffusion/ModelLoader.h"
#include "core/diffusion/UNet.h"
#include "core/hypernetwork/Hypernetwork.h"
#include "core/hypernetwork/HypernetworkConfig.h"
#include "core/io/TensorSource.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <QElapsedTimer>
#include <QString>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace studio;

namespace {

struct Options
{
    QString model = QStringLiteral("both");
    int size = 32;
    int threads = 2;
    int steps = 3;
    AttentionKind attention = AttentionKind::Plain;
    bool checkpointing = false;
    bool peak = true;
    QString child; // the model a child process measures
};

bool parseOptions(int argc, char** argv, Options& options)
{
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool hasValue = i + 1 < argc;
        if (arg == "--model" && hasValue) {
            options.model = QString::fromLocal8Bit(argv[++i]);
        } else if (arg == "--size" && hasValue) {
            options.size = std::atoi(argv[++i]);
        } else if (arg == "--threads" && hasValue) {
            options.threads = std::atoi(argv[++i]);
        } else if (arg == "--steps" && hasValue) {
            options.steps = std::atoi(argv[++i]);
        } else if (arg == "--attention" && hasValue) {
            const std::string kind = argv[++i];
            options.attention = kind == "sliced" ? AttentionKind::Sliced
                                : kind == "sdpa" ? AttentionKind::Sdpa
                                                 : AttentionKind::Plain;
        } else if (arg == "--checkpointing") {
            options.checkpointing = true;
        } else if (arg == "--no-peak") {
            options.peak = false;
        } else if (arg == "--child" && hasValue) {
            options.child = QString::fromLocal8Bit(argv[++i]);
        } else {
            return false;
        }
    }
    return options.size >= 8 && options.size % 8 == 0 && options.threads >= 1 && options.steps >= 1;
}

// --- the machine's peak ---------------------------------------------------------------------

double gflopsOf(const std::function<void()>& body, double flopsPerCall)
{
    body(); // warm up: first calls pick kernels and allocate
    QElapsedTimer timer;
    timer.start();
    int calls = 0;
    while (calls < 3 || timer.elapsed() < 1500) {
        body();
        ++calls;
    }
    return flopsPerCall * calls / (static_cast<double>(timer.nsecsElapsed()) * 1e-9) / 1e9;
}

struct Peak
{
    double matmul = 0.0;
    double convolution = 0.0;
    double best() const { return std::max(matmul, convolution); }
};

Peak measurePeak()
{
    torch::NoGradGuard noGrad;
    Peak peak;
    const int64_t n = 2048;
    const at::Tensor a = at::randn({n, n});
    const at::Tensor b = at::randn({n, n});
    peak.matmul = gflopsOf([&] { (void)at::mm(a, b); }, 2.0 * n * n * n);

    // A UNet-like 3x3 convolution (SD1.5's first level at 32x32 latents, 4 images).
    const at::Tensor x = at::randn({4, 320, 32, 32});
    const at::Tensor w = at::randn({320, 320, 3, 3});
    const double convFlops = 2.0 * 4 * 320 * 320 * 9 * 32 * 32;
    peak.convolution = gflopsOf([&] { (void)at::conv2d(x, w, {}, 1, 1); }, convFlops);
    return peak;
}

// --- counting the step's arithmetic ---------------------------------------------------------

// Forward FLOPs of the UNet at `size` x `size` latents with a context of `tokens` x
// `contextDim`, from the architecture (sd-architecture.md 1.3-1.8): every convolution, linear
// layer and attention product, 2 FLOPs per multiply-add. Norms and activations are left out
// (memory-bound, a few percent).
double unetForwardFlops(const UNetConfig& c, int size, int tokens)
{
    double flops = 0.0;
    const auto conv = [&](int in, int out, int k, int pixels) {
        flops += 2.0 * in * out * k * k * pixels;
    };
    const auto linear = [&](double rows, int in, int out) { flops += 2.0 * rows * in * out; };
    const int timeDim = c.modelChannels * 4;
    linear(1, c.modelChannels, timeDim);
    linear(1, timeDim, timeDim);

    const auto resBlock = [&](int in, int out, int pixels) {
        conv(in, out, 3, pixels);
        linear(1, timeDim, out);
        conv(out, out, 3, pixels);
        if (in != out) {
            conv(in, out, 1, pixels);
        }
    };
    const auto transformer = [&](int width, int pixels) {
        const double n = pixels;
        linear(n, width, width); // proj_in (1x1 conv or linear: same arithmetic)
        for (int d = 0; d < c.transformerDepth; ++d) {
            linear(n, width, 3 * width);             // self-attention q, k, v
            flops += 2.0 * 2.0 * n * n * width;      // q k^T and attn v
            linear(n, width, width);                 // to_out
            linear(n, width, width);                 // cross q
            linear(tokens, c.contextDim, 2 * width); // cross k, v
            flops += 2.0 * 2.0 * n * tokens * width;
            linear(n, width, width);
            linear(n, width, 8 * width); // GEGLU proj
            linear(n, 4 * width, width);
        }
        linear(n, width, width); // proj_out
    };

    const int levels = static_cast<int>(c.channelMult.size());
    std::vector<std::pair<int, int>> skips; // (channels, pixels)
    int pixels = size * size;
    int channels = c.modelChannels;
    conv(c.inChannels, channels, 3, pixels);
    skips.emplace_back(channels, pixels);
    for (int level = 0; level < levels; ++level) {
        const int ds = 1 << level;
        const bool attention =
            std::find(c.attentionResolutions.begin(), c.attentionResolutions.end(), ds) !=
            c.attentionResolutions.end();
        for (int block = 0; block < c.numResBlocks; ++block) {
            const int out = c.modelChannels * c.channelMult[static_cast<size_t>(level)];
            resBlock(channels, out, pixels);
            channels = out;
            if (attention) {
                transformer(channels, pixels);
            }
            skips.emplace_back(channels, pixels);
        }
        if (level + 1 < levels) {
            pixels /= 4;
            conv(channels, channels, 3, pixels);
            skips.emplace_back(channels, pixels);
        }
    }
    resBlock(channels, channels, pixels);
    transformer(channels, pixels);
    resBlock(channels, channels, pixels);
    for (int level = levels - 1; level >= 0; --level) {
        const int ds = 1 << level;
        const bool attention =
            std::find(c.attentionResolutions.begin(), c.attentionResolutions.end(), ds) !=
            c.attentionResolutions.end();
        for (int block = 0; block <= c.numResBlocks; ++block) {
            const auto [skipChannels, skipPixels] = skips.back();
            skips.pop_back();
            const int out = c.modelChannels * c.channelMult[static_cast<size_t>(level)];
            resBlock(channels + skipChannels, out, skipPixels);
            channels = out;
            if (attention) {
                transformer(channels, pixels);
            }
            if (level > 0 && block == c.numResBlocks) {
                pixels *= 4;
                conv(channels, channels, 3, pixels);
            }
        }
    }
    conv(channels, c.outChannels, 3, pixels);
    return flops;
}

// --- child: the measured steps ---------------------------------------------------------------

HypernetworkConfig hypernetworkConfig(std::vector<int> sizes)
{
    HypernetworkConfig config;
    config.name = QStringLiteral("bench");
    config.sizes = std::move(sizes);
    config.layerStructure = {1.0, 2.0, 1.0};
    config.activation = QStringLiteral("relu");
    config.initSeed = 1;
    return config;
}

struct Model
{
    UNetModel unet{nullptr};
    std::vector<int> hypernetworkSizes;
    int contextDim = 768;
    QString name;
};

Model buildModel(const QString& which)
{
    Model model;
    if (which == QLatin1String("tiny")) {
        const QString path = QStringLiteral(HNSTUDIO_REFERENCE_DIR "/full/tiny_sd1.safetensors");
        const auto source = io::openTensorSource(path);
        ModelConfig config = resolveModelConfig(path, QString(), *source);
        model.unet = loadUNet(*source, config);
        model.hypernetworkSizes = {32, 64};
        model.contextDim = config.unet.contextDim;
        model.name = QStringLiteral("tiny (reference full/, %1 parameters)");
    } else {
        torch::manual_seed(1);
        model.unet = UNetModel(UNetConfig{});
        model.hypernetworkSizes = {768, 320, 640, 1280};
        model.name = QStringLiteral("SD1.5-shaped UNet (random, %1 parameters)");
    }
    int64_t parameters = 0;
    for (at::Tensor& parameter : model.unet->parameters()) {
        parameter.requires_grad_(false);
        parameters += parameter.numel();
    }
    model.name = model.name.arg(parameters);
    return model;
}

double weightMiB(const torch::nn::Module& module)
{
    double bytes = 0.0;
    for (const at::Tensor& parameter : module.parameters()) {
        bytes += static_cast<double>(parameter.nbytes());
    }
    return bytes / (1024.0 * 1024.0);
}

int runChild(const Options& options)
{
    Model model = buildModel(options.child);
    Hypernetwork hypernetwork = Hypernetwork::create(hypernetworkConfig(model.hypernetworkSizes));
    hypernetwork.train(true);
    UNetRuntime& runtime = model.unet->runtime();
    runtime.hypernetworks = {&hypernetwork};
    runtime.attention = options.attention;
    runtime.gradientCheckpointing = options.checkpointing;
    torch::optim::AdamW optimizer(hypernetwork.parameters(), torch::optim::AdamWOptions(1e-5));

    const at::Tensor x = at::randn({1, 4, options.size, options.size});
    const at::Tensor noise = at::randn_like(x);
    const at::Tensor timesteps = at::full({1}, 500, at::kLong);
    const at::Tensor context = at::randn({1, 77, model.contextDim});
    const auto step = [&] {
        const at::Tensor loss = at::mse_loss(model.unet->forward(x, timesteps, context), noise);
        loss.backward();
        optimizer.step();
        optimizer.zero_grad();
    };

    step(); // warm-up: kernels chosen, optimizer state allocated
    malloc_trim(0);
    const bool reset = bench::resetPeakRss();
    const double baseline = bench::statusMiB("VmRSS");
    QElapsedTimer timer;
    timer.start();
    for (int i = 0; i < options.steps; ++i) {
        step();
    }
    const double seconds = static_cast<double>(timer.nsecsElapsed()) * 1e-9 / options.steps;
    const double peak = bench::statusMiB("VmHWM");

    const double forward = unetForwardFlops(model.unet->config(), options.size, 77);
    std::printf("%s\t%.4f\t%.0f\t%.0f\t%.1f\t%.0f\n", qPrintable(model.name), seconds,
                reset ? peak - baseline : -1.0, weightMiB(*model.unet), forward / 1e9, peak);
    return 0;
}

int runParent(const Options& options, char** argv)
{
    std::printf("Hypernetwork training step, batch 1, latents %dx%d, fp32, %d threads, "
                "%s attention%s; mean of %d steps after one warm-up step\n\n",
                options.size, options.size, options.threads,
                options.attention == AttentionKind::Plain    ? "plain"
                : options.attention == AttentionKind::Sliced ? "sliced"
                                                             : "sdpa",
                options.checkpointing ? ", gradient checkpointing" : "", options.steps);
    Peak peak;
    if (options.peak) {
        peak = measurePeak();
        std::printf("measured peak: matmul 2048^3 %.1f GFLOP/s, conv 3x3 320ch %.1f GFLOP/s\n\n",
                    peak.matmul, peak.convolution);
    }

    std::printf("%-48s %7s %9s %9s %8s %10s %8s %7s\n", "model", "s/step", "step MiB", "peak RSS",
                "weights", "step GFLOP", "GFLOP/s", "of peak");
    const QStringList models = options.model == QLatin1String("both")
                                   ? QStringList{QStringLiteral("tiny"), QStringLiteral("sd15")}
                                   : QStringList{options.model};
    for (const QString& model : models) {
        std::string command = bench::selfExecutable() + " --child " + model.toStdString();
        for (int i = 1; argv[i]; ++i) {
            command += std::string(" '") + argv[i] + "'";
        }
        FILE* pipe = popen(command.c_str(), "r");
        char line[1024] = {};
        const bool ok = pipe && std::fgets(line, sizeof(line), pipe);
        if (pipe) {
            pclose(pipe);
        }
        const QStringList fields = QString::fromLocal8Bit(line).trimmed().split(QLatin1Char('\t'));
        if (!ok || fields.size() < 6) {
            std::printf("%-48s failed\n", qPrintable(model));
            continue;
        }
        const double seconds = fields[1].toDouble();
        // Backward: input gradients through every frozen layer, about the forward's arithmetic.
        const double stepFlops = 2.0 * fields[4].toDouble();
        const double rate = stepFlops / seconds;
        std::printf("%-48s %7.3f %9.0f %9.0f %8.0f %10.1f %8.1f %6.0f%%\n", qPrintable(fields[0]),
                    seconds, fields[2].toDouble(), fields[5].toDouble(), fields[3].toDouble(),
                    stepFlops, rate, peak.best() > 0 ? 100.0 * rate / peak.best() : 0.0);
    }
    std::printf("\nstep MiB: how far the measured steps raised the peak RSS above the RSS after "
                "the warm-up step. peak RSS: the process's whole peak (MiB), to compare with "
                "'weights', the UNet's float32 parameters. step GFLOP: forward counted from "
                "the layer shapes, backward taken as the same again (input gradients only; the "
                "UNet is frozen).\n");
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    configureCpuRuntime(argv); // as hnstudio does; HNSTUDIO_DEFAULT_RUNTIME=1 to compare
    Options options;
    if (!parseOptions(argc, argv, options)) {
        std::fprintf(stderr, "usage: bench_train_step [--model tiny|sd15|both] [--size N] "
                             "[--threads N] [--steps N] [--attention plain|sliced|sdpa] "
                             "[--checkpointing] [--no-peak]\n");
        return 2;
    }
    at::set_num_threads(options.threads);
    try {
        return options.child.isEmpty() ? runParent(options, argv) : runChild(options);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "bench_train_step: %s\n", error.what());
        return 1;
    }
}
