#include "ui/TrainPage.h"

#include <QLabel>
#include <QVBoxLayout>

namespace studio::ui {

TrainPage::TrainPage(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(new QLabel(QStringLiteral("TrainPage"), this));
}

} // namespace studio::ui
