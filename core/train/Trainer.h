#pragma once

// The training engine: a run configuration and an image folder in, a trained hypernetwork and
// a run folder out (studio.md section 5). The CLI drives it on its own thread; the studio on a
// worker thread. Progress leaves through TrainerCallbacks as plain values, control comes in
// through cancel() / setPaused(), which are safe to call from any thread and act between steps.
//
// Every random choice is drawn from a stream keyed by the run's seed and what it decides (the
// step, the image): data order, prompts, flips, noise, timesteps, latent samples and the
// hypernetwork's dropout. A run resumed at any step therefore continues exactly as the
// uninterrupted run would, and previews, which draw from their own streams, cannot disturb it.

#include "core/train/RunConfig.h"

#include <QString>
#include <QStringList>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

namespace studio {

struct StepRecord
{
    int64_t step = 0; // optimizer steps done
    int64_t totalSteps = 0;
    int64_t epoch = 0;     // as loss.csv: (step - 1) / steps per epoch
    int64_t epochStep = 0; // (step - 1) % steps per epoch
    double loss = 0.0;     // mean of the micro-batch losses of this step
    double learningRate = 0.0;
    double secondsPerStep = 0.0; // smoothed
    double etaSeconds = 0.0;
    int64_t residentBytes = 0; // process memory
};

struct PreviewRecord
{
    int64_t step = 0;
    QString path; // the PNG written
    QString infotext;
};

enum class TrainingStatus
{
    Finished,  // reached training.steps (or the end of the step schedule)
    Cancelled, // stopped by cancel(); saved at the step reached
    Diverged,  // the loss became NaN or infinite; the last good state is saved
};

struct TrainingResult
{
    TrainingStatus status = TrainingStatus::Finished;
    int64_t stepsDone = 0;
    QString lastSave; // the last hypernetwork file written (empty if none)
    QString message;
};

struct TrainerCallbacks
{
    std::function<void(const QString&)> message; // human-readable lines, also in the log
    std::function<void(const StepRecord&)> step;
    std::function<void(const QString&)> saved; // a .pt path
    std::function<void(const PreviewRecord&)> preview;
};

struct DatasetSummary
{
    int images = 0;
    int skipped = 0;
    int batchSize = 0;            // after clamping to the image count
    int gradientAccumulation = 0; // after clamping
    int64_t stepsPerEpoch = 0;
};

class Trainer
{
public:
    // `resumeFrom`: a hypernetwork file to continue from (its step and, when its .optim matches,
    // the optimizer state); empty: hypernetwork.file or a new hypernetwork.
    Trainer(RunConfig config, TrainerCallbacks callbacks, QString resumeFrom = {});
    ~Trainer();

    // Runs to the end, to cancel() or to divergence. Throws studio::Error for problems found
    // before or during the run (missing files, bad data, out of memory); saves made so far stay.
    TrainingResult run();

    // Only stores a flag, so it is safe from a signal handler.
    void cancel();
    void setPaused(bool paused);
    bool isPaused() const { return m_paused.load(); }

    // The run folder's files.
    static QString lossCsvPath(const QString& runFolder);
    static QString logPath(const QString& runFolder);
    static QString runJsonPath(const QString& runFolder);
    static QString datasetCsvPath(const QString& runFolder); // file,caption,width,height

private:
    // False once cancelled; blocks while paused.
    bool waitWhilePaused();

    RunConfig m_config;
    TrainerCallbacks m_callbacks;
    QString m_resumeFrom;
    std::atomic<bool> m_cancelled{false};
    std::atomic<bool> m_paused{false};
    std::mutex m_pauseMutex;
    std::condition_variable m_pauseChanged;
};

// steps per epoch = floor(images / batch / accumulation), at least 1 (spec 3.5).
DatasetSummary summarizeDataset(int images, int batchSize, int gradientAccumulation);

} // namespace studio
