#pragma once

// Train: a run configured, started and watched. On the left every field of the run file
// (RunForm) with the dataset preview and the derived numbers; on the right Start / Pause /
// Stop, the progress with ETA and memory, the loss and learning-rate plots, the previews as
// they arrive and the trainer's messages. Runs are saved and opened as the same JSON that
// `hnstudio train` reads. Training runs on its own thread (TrainingWorker).

#include "core/train/RunConfig.h"
#include "core/train/Trainer.h"

#include <QString>
#include <QWidget>

#include <optional>

class QLabel;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;

namespace studio::ui {

class LearningRatePlot;
class LossPlot;
class PreviewGallery;
class RunForm;
class TrainingWorker;

class TrainPage : public QWidget
{
    Q_OBJECT

public:
    explicit TrainPage(QWidget* parent = nullptr);
    // Stops a running training and waits for it, so no thread outlives the page.
    ~TrainPage() override;

    void setRunConfig(const RunConfig& config);
    // The run the fields describe; nullopt when a field is invalid (validationMessage() says
    // which and why).
    std::optional<RunConfig> runConfig() const;
    QString validationMessage() const;

    // Starts training the fields' run. False, with the reason in statusText(), when a field is
    // invalid or a run is already training.
    bool start();
    void pause();
    void resume();
    // Asks the run to stop after the current step; it saves that step and finishes.
    void stop();
    // Stops and blocks until the run has ended and saved (for closing the window).
    void stopAndWait();
    bool isTraining() const;
    bool isPaused() const;

    // The run file of the fields, written exactly as `hnstudio train` reads it. False, with the
    // reason in statusText(), when a field is invalid or the file cannot be written.
    bool saveRunFile(const QString& path);
    QString statusText() const;

    RunForm* form() const { return m_form; }
    LossPlot* lossPlot() const { return m_lossPlot; }
    LearningRatePlot* learningRatePlot() const { return m_learningRatePlot; }
    PreviewGallery* previewGallery() const { return m_gallery; }
    // The last step reported by the running or last run; 0 before any.
    int64_t lastStep() const { return m_lastRecord.step; }

public Q_SLOTS:
    // Fills the fields from a run file; false, with the reason in statusText(), when the file
    // cannot be read or a run is training.
    bool openRunFile(const QString& path);
    // Continue training `path` (a hypernetwork made on the Create page).
    void useHypernetworkFile(const QString& path);

Q_SIGNALS:
    void trainingStarted();
    void trainingFinished(const studio::TrainingResult& result);
    void trainingFailed(const QString& message);

private:
    QWidget* buildMonitor();
    QWidget* buildControls();

    void onFormChanged();
    void onStep(const StepRecord& record);
    void onPreview(const PreviewRecord& preview);
    void onFinished(const TrainingResult& result);
    void onFailed(const QString& message);
    void onRunEnded();
    void chooseRunFileToSave();
    void chooseRunFileToOpen();

    void updateButtons();
    void setStatus(const QString& text, bool problem = false);
    void appendLog(const QString& line);

    RunForm* m_form = nullptr;
    TrainingWorker* m_worker = nullptr;
    LossPlot* m_lossPlot = nullptr;
    LearningRatePlot* m_learningRatePlot = nullptr;
    PreviewGallery* m_gallery = nullptr;
    QPlainTextEdit* m_log = nullptr;
    QProgressBar* m_progress = nullptr;
    QLabel* m_status = nullptr;
    QLabel* m_stepInfo = nullptr;
    QPushButton* m_startButton = nullptr;
    QPushButton* m_pauseButton = nullptr;
    QPushButton* m_stopButton = nullptr;
    QPushButton* m_saveButton = nullptr;
    QPushButton* m_openButton = nullptr;

    StepRecord m_lastRecord;
};

} // namespace studio::ui
