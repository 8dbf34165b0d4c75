#include "ui/TrainingWorker.h"

#include "core/Error.h"

#include <QCoreApplication>
#include <QEvent>
#include <QThread>

namespace studio::ui {

TrainingWorker::TrainingWorker(QObject* parent) : QObject(parent) {}

TrainingWorker::~TrainingWorker()
{
    stopAndWait();
}

bool TrainingWorker::start(const RunConfig& config, const QString& resumeFrom)
{
    if (m_running) {
        return false;
    }
    m_result = TrainingResult();
    m_error.clear();
    m_paused = false;
    m_trainer = std::make_unique<Trainer>(config, makeCallbacks(), resumeFrom);

    m_thread.reset(QThread::create([this] { runOnThread(); }));
    m_thread->setObjectName(QStringLiteral("training"));
    // QThread::finished comes from the training thread; queued, the slot runs here.
    connect(m_thread.get(), &QThread::finished, this, &TrainingWorker::onThreadFinished,
            Qt::QueuedConnection);
    m_running = true;
    m_thread->start();
    Q_EMIT started();
    return true;
}

// Every callback runs on the training thread. Each one posts its values to this object, so the
// signals are emitted on the UI thread, in order, and never after this object is gone.
TrainerCallbacks TrainingWorker::makeCallbacks()
{
    TrainerCallbacks callbacks;
    callbacks.message = [this](const QString& line) {
        QMetaObject::invokeMethod(
            this, [this, line] { Q_EMIT message(line); }, Qt::QueuedConnection);
    };
    callbacks.step = [this](const StepRecord& record) {
        QMetaObject::invokeMethod(
            this, [this, record] { Q_EMIT stepDone(record); }, Qt::QueuedConnection);
    };
    callbacks.saved = [this](const QString& path) {
        QMetaObject::invokeMethod(
            this, [this, path] { Q_EMIT saved(path); }, Qt::QueuedConnection);
    };
    callbacks.preview = [this](const PreviewRecord& preview) {
        QMetaObject::invokeMethod(
            this, [this, preview] { Q_EMIT previewReady(preview); }, Qt::QueuedConnection);
    };
    return callbacks;
}

void TrainingWorker::runOnThread()
{
    // Errors never cross the thread: they are kept and reported by onThreadFinished().
    try {
        m_result = m_trainer->run();
    } catch (const Error& error) {
        m_error = error.message();
    } catch (const std::exception& error) {
        m_error = QStringLiteral("training stopped by an unexpected error: %1")
                      .arg(QString::fromUtf8(error.what()));
    }
}

void TrainingWorker::onThreadFinished()
{
    if (!m_running) {
        return; // already reported, by stopAndWait() or by the call that delivered this event
    }
    m_running = false;
    m_paused = false;
    m_thread->wait();
    // What the callbacks posted is delivered first, so finished() is the last word of the run.
    // This also consumes the queued QThread::finished, so nothing of this run is left behind.
    QCoreApplication::sendPostedEvents(this, QEvent::MetaCall);
    m_trainer.reset();
    if (m_error.isEmpty()) {
        Q_EMIT finished(m_result);
    } else {
        Q_EMIT failed(m_error);
    }
}

void TrainingWorker::pause()
{
    if (m_running && !m_paused) {
        m_trainer->setPaused(true);
        m_paused = true;
        Q_EMIT pausedChanged(true);
    }
}

void TrainingWorker::resume()
{
    if (m_running && m_paused) {
        m_trainer->setPaused(false);
        m_paused = false;
        Q_EMIT pausedChanged(false);
    }
}

void TrainingWorker::stop()
{
    if (m_running) {
        // cancel() also ends a pause: the trainer looks at it while it waits.
        m_trainer->cancel();
    }
}

void TrainingWorker::stopAndWait()
{
    if (!m_running) {
        return;
    }
    stop();
    onThreadFinished();
}

} // namespace studio::ui
