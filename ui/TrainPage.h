#pragma once

// Train: a run configured, started and watched.

#include <QWidget>

namespace studio::ui {

class TrainPage : public QWidget
{
    Q_OBJECT

public:
    explicit TrainPage(QWidget* parent = nullptr);
};

} // namespace studio::ui
