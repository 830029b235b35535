from django.urls import path

from helpline.console import views

app_name = "console"

urlpatterns = [
    path("", views.my_queue, name="queue"),
]
