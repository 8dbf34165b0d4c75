// hnstudio train: runs the training engine on a run file, headless. On a terminal a progress
// bar redraws in place; otherwise (logs, CI) plain lines come at most every few seconds.
// Ctrl-C stops after the current step with a save; a second Ctrl-C ends the process at once.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/Error.h"
#include "core/train/RunConfig.h"
#include "core/train/Trainer.h"

#include <QDir>
#include <QElapsedTimer>

#include <array>
#include <atomic>
#include <csignal>
#include <cstring>
#include <unistd.h>

namespace studio::cli {

namespace {

std::atomic<Trainer*> g_runningTrainer{nullptr};

void onInterrupt(int signalNumber)
{
    static const char kMessage[] =
        "\nhnstudio: stopping after this step and saving (Ctrl-C again to quit at once)\n";
    Trainer* trainer = g_runningTrainer.load();
    if (trainer) {
        trainer->cancel();
        (void)!write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    }
    std::signal(signalNumber, SIG_DFL);
}

// Installs the stop handler for the lifetime of one run: Ctrl-C, and the SIGTERM / SIGHUP that
// a closed SSH session or a cluster's job limit sends, all stop after the step and save.
class InterruptGuard
{
public:
    explicit InterruptGuard(Trainer& trainer)
    {
        g_runningTrainer.store(&trainer);
        for (size_t i = 0; i < kSignals.size(); ++i) {
            m_previous[i] = std::signal(kSignals[i], onInterrupt);
        }
    }

    ~InterruptGuard()
    {
        for (size_t i = 0; i < kSignals.size(); ++i) {
            std::signal(kSignals[i], m_previous[i]);
        }
        g_runningTrainer.store(nullptr);
    }

    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

private:
    static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
    std::array<void (*)(int), 3> m_previous = {SIG_DFL, SIG_DFL, SIG_DFL};
};

QString formatDuration(double seconds)
{
    const auto total = static_cast<qint64>(std::max(0.0, seconds) + 0.5);
    return QStringLiteral("%1:%2:%3")
        .arg(total / 3600, 2, 10, QLatin1Char('0'))
        .arg((total / 60) % 60, 2, 10, QLatin1Char('0'))
        .arg(total % 60, 2, 10, QLatin1Char('0'));
}

QString progressText(const StepRecord& step)
{
    const double rate = step.secondsPerStep > 0 ? 1.0 / step.secondsPerStep : 0.0;
    return QStringLiteral("step %1/%2  loss %3  lr %4  %5 it/s  ETA %6")
        .arg(step.step)
        .arg(step.totalSteps)
        .arg(step.loss, 0, 'f', 5)
        .arg(step.learningRate, 0, 'g', 3)
        .arg(rate, 0, 'f', 2)
        .arg(formatDuration(step.etaSeconds));
}

// Draws progress for a terminal (one redrawn line with a bar) or for a log (a line every few
// seconds, plus the first and last step).
class ProgressPrinter
{
public:
    explicit ProgressPrinter(bool terminal) : m_terminal(terminal) { m_sinceLine.start(); }

    void step(const StepRecord& record)
    {
        if (m_terminal) {
            constexpr int kBarWidth = 24;
            const auto filled =
                static_cast<int>(kBarWidth * record.step / std::max<int64_t>(1, record.totalSteps));
            const QString bar =
                QString(filled, QLatin1Char('#')) + QString(kBarWidth - filled, QLatin1Char('-'));
            err() << "\r[" << bar << "] " << progressText(record) << "\x1b[K";
            err().flush();
            m_lineOpen = true;
            return;
        }
        const bool due = m_sinceLine.elapsed() >= kPlainIntervalMs ||
                         record.step == record.totalSteps || !m_printedAny;
        if (due) {
            err() << progressText(record) << '\n';
            err().flush();
            m_sinceLine.restart();
            m_printedAny = true;
        }
    }

    void message(const QString& text)
    {
        if (m_lineOpen) {
            err() << '\n';
            m_lineOpen = false;
        }
        err() << text << '\n';
        err().flush();
    }

    void finish()
    {
        if (m_lineOpen) {
            err() << '\n';
            err().flush();
            m_lineOpen = false;
        }
    }

private:
    static constexpr qint64 kPlainIntervalMs = 5000;

    bool m_terminal;
    bool m_lineOpen = false;
    bool m_printedAny = false;
    QElapsedTimer m_sinceLine;
};

int train(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "Trains a hypernetwork as a run file describes (docs/run-config.md). Writes the run\n"
        "folder: hypernetworks/NAME-STEP.pt (+ .optim), images/NAME-STEP.png, loss.csv,\n"
        "run.json and train.log. Ctrl-C saves and stops after the current step."));
    parser.addHelpOption();
    parser.addOptions({
        {QStringLiteral("resume"),
         QStringLiteral("Continue from this saved hypernetwork (and its .optim): its step, the "
                        "schedule position, the optimizer state and the data order go on."),
         QStringLiteral("FILE.pt")},
        {QStringLiteral("device"), QStringLiteral("Override training.device (cpu, cuda, cuda:N)."),
         QStringLiteral("DEVICE")},
        {QStringLiteral("steps"), QStringLiteral("Override training.steps."), QStringLiteral("N")},
        {QStringLiteral("output"), QStringLiteral("Override output.folder."),
         QStringLiteral("FOLDER")},
    });
    parser.addPositionalArgument(QStringLiteral("RUN.json"), QStringLiteral("The run file."));
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    if (parser.positionalArguments().size() != 1) {
        failUsage(QStringLiteral("give exactly one run file"));
    }

    RunConfig config = readRunConfig(parser.positionalArguments().front());
    if (parser.isSet(QStringLiteral("device"))) {
        config.training.device = parser.value(QStringLiteral("device"));
    }
    if (parser.isSet(QStringLiteral("steps"))) {
        config.training.steps = integerOption(parser, QStringLiteral("steps"));
    }
    if (parser.isSet(QStringLiteral("output"))) {
        config.output.folder =
            QDir::current().absoluteFilePath(parser.value(QStringLiteral("output")));
    }
    validateRunConfig(config);

    ProgressPrinter printer(isatty(STDERR_FILENO) != 0);
    TrainerCallbacks callbacks;
    callbacks.message = [&printer](const QString& text) { printer.message(text); };
    callbacks.step = [&printer](const StepRecord& record) { printer.step(record); };

    Trainer trainer(config, callbacks, parser.value(QStringLiteral("resume")));
    TrainingResult result;
    {
        const InterruptGuard interrupt(trainer);
        result = trainer.run();
    }
    printer.finish();

    if (result.status == TrainingStatus::Diverged) {
        return kExitFailure; // the message went out through the trainer's log
    }
    if (!result.lastSave.isEmpty()) {
        out() << QDir::toNativeSeparators(result.lastSave) << '\n';
        out().flush();
    }
    return kExitOk;
}

} // namespace

int runTrain(const QStringList& arguments)
{
    return runCommand(QStringLiteral("train"), [&] { return train(arguments); });
}

} // namespace studio::cli
