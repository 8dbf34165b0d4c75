#pragma once

// Runs a studio::Trainer on its own thread for the Train page. The trainer's callbacks come
// back as signals on the UI thread, in the order they happened; pause, resume and stop act
// between steps. Nothing here blocks the UI thread except stopAndWait(), which is meant for
// closing the window.

#include "core/train/Trainer.h"

#include <QObject>
#include <QString>

#include <memory>

class QThread;

namespace studio::ui {

class TrainingWorker : public QObject
{
    Q_OBJECT

public:
    explicit TrainingWorker(QObject* parent = nullptr);
    // Stops a running training and waits for it (its last step is saved).
    ~TrainingWorker() override;

    // Starts training `config` (continuing `resumeFrom` when set). False when a run is already
    // going. Problems with the run itself arrive as failed().
    bool start(const RunConfig& config, const QString& resumeFrom = QString());

    // True from start() until finished() or failed() has been emitted.
    bool isRunning() const { return m_running; }
    bool isPaused() const { return m_paused; }

    // Takes effect before the next step; a step or preview in progress completes.
    void pause();
    void resume();
    // Cancels at the next step boundary (an in-progress preview is cut short); the trainer
    // saves the step reached and finished() reports TrainingStatus::Cancelled.
    void stop();

    // stop(), then blocks until the training thread has ended and every pending signal,
    // finished() included, has been emitted. For closing the window.
    void stopAndWait();

Q_SIGNALS:
    void started();
    void message(const QString& line);
    void stepDone(const studio::StepRecord& record);
    void previewReady(const studio::PreviewRecord& preview);
    void saved(const QString& path);
    void pausedChanged(bool paused);
    // Exactly one of these ends every run.
    void finished(const studio::TrainingResult& result);
    void failed(const QString& message);

private:
    TrainerCallbacks makeCallbacks();
    void runOnThread();
    void onThreadFinished();

    std::unique_ptr<Trainer> m_trainer;
    std::unique_ptr<QThread> m_thread;
    bool m_running = false;
    bool m_paused = false;
    // Written by the training thread before it ends, read on the UI thread after.
    TrainingResult m_result;
    QString m_error;
};

} // namespace studio::ui
