"""The service's URLs plus the bare insert endpoint the benchmark compares intake with."""
from django.urls import path

from benchmarks.bare_insert import BareInsertView
from helpline.project.urls import urlpatterns as service_urlpatterns

urlpatterns = [*service_urlpatterns, path("bench/bare-insert/", BareInsertView.as_view())]
