#pragma once

// Short jobs off the UI thread (scanning a dataset folder, describing a checkpoint, reading a
// run folder): the work runs on Qt's global thread pool and its result comes back to the UI
// thread as an event, so the window keeps drawing meanwhile. Training has its own thread
// (TrainingWorker).

#include <QMetaObject>
#include <QObject>
#include <QPointer>
#include <QThreadPool>

#include <functional>
#include <memory>
#include <type_traits>

namespace studio::ui {

// Runs `work()` on the thread pool, then `done(result)` on the UI thread, unless `owner` was
// destroyed meanwhile. `work` must not throw: report problems in its result.
template <typename Work, typename Done> void runInBackground(QObject* owner, Work work, Done done)
{
    using Result = std::invoke_result_t<Work>;
    // Created here, so it lives in the UI thread: events posted to it are handled there. The
    // guard is only read on the UI thread, so it cannot race with the owner's deletion.
    auto* relay = new QObject;
    const QPointer<QObject> guard(owner);
    const std::function<Result()> job = std::move(work);
    const std::function<void(Result)> finish = std::move(done);

    QThreadPool::globalInstance()->start([relay, guard, job, finish] {
        auto result = std::make_shared<Result>(job());
        QMetaObject::invokeMethod(
            relay,
            [relay, guard, finish, result] {
                if (guard) {
                    finish(std::move(*result));
                }
                relay->deleteLater();
            },
            Qt::QueuedConnection);
    });
}

} // namespace studio::ui
