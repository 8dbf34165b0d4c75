#pragma once

// What the loss and learning-rate plots share: a QCustomPlot over optimizer steps that zooms
// (wheel) and pans (drag), follows new data until the user zooms or pans (a double click goes
// back to following), redraws at most a few times a second however fast points arrive, and
// shows the values under the mouse as a tooltip.

#include "ui/QCustomPlotInclude.h"

#include <QString>
#include <QTimer>

#include <vector>

namespace studio::ui {

class StepPlot : public QCustomPlot
{
    Q_OBJECT

public:
    explicit StepPlot(QWidget* parent = nullptr);

    // False once the user has zoomed or panned; the axes then stay where they put them.
    bool isFollowingData() const { return m_following; }
    // Fits the axes to all data and follows new data again.
    void followData();

    // The tooltip text for the point nearest to `step` (empty when there is no data).
    virtual QString describeNearest(double step) const = 0;

protected:
    // The steps and the values of all the plot's data; false when it has none.
    virtual bool dataBounds(QCPRange& steps, QCPRange& values) const = 0;

    // The value axis for data spanning `fitted`: a margin around it by default, so that no
    // point sits on the frame and a flat line is drawn in the middle.
    virtual QCPRange valueRange(const QCPRange& fitted) const;

    // Grows `range` to hold every value of `data`.
    static void include(QCPRange& range, bool& any, const std::vector<double>& data);

    // Redraws soon: several changes within one interval cost one redraw.
    void scheduleReplot();

    // Index of the value in `steps` (ascending) nearest to `step`; -1 when empty.
    static int nearestIndex(const std::vector<double>& steps, double step);

    static QString formatNumber(double value);

private:
    void replotNow();
    void showToolTip(QMouseEvent* event);

    QTimer m_replotTimer;
    bool m_following = true;
};

} // namespace studio::ui
