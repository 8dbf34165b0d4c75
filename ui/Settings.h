#pragma once

// The studio's remembered settings (studio.md section 6): device, precision, CPU threads,
// tokenizer path and output folder, as typed values over QSettings. Pages read them with
// Settings::load() when they need them and the settings dialog writes them with save().

#include <QString>
#include <QStringList>

namespace studio::ui {

struct Settings
{
    // "cpu" or "cuda:N", as core/EngineInfo.h lists them.
    QString device = QStringLiteral("cpu");
    // Weights of the frozen model: "fp32", "fp16" (CUDA only) or "bf16".
    QString precision = QStringLiteral("fp32");
    // LibTorch's CPU threads; 0 keeps the count the process started with.
    int threads = 0;
    // A CLIP vocabulary file; empty searches the usual places beside the checkpoint.
    QString tokenizerPath;
    // Where new hypernetworks and runs go.
    QString outputFolder = defaultOutputFolder();

    // From the application's QSettings; missing or unreadable values take the defaults.
    static Settings load();
    void save() const;

    static QStringList precisionChoices();
    // <documents>/Hypernet Studio.
    static QString defaultOutputFolder();

    // Empty when the values can be used together; otherwise what is wrong and how to fix it.
    QString problem() const;

    bool operator==(const Settings& other) const;
    bool operator!=(const Settings& other) const { return !(*this == other); }
};

// Applies what acts on the running process (the CPU thread count) at once.
void applyEngineSettings(const Settings& settings);

} // namespace studio::ui
