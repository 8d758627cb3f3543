"""Our own device errors: adapters translate pyscard, pyserial and CUPS failures into these, so
the services and the web never see a driver's exception."""

from __future__ import annotations

from unioncard.errors import UnionCardError
from unioncard.i18n import N_


class DeviceError(UnionCardError):
    code = "device_error"
    message = N_("The device did not answer as expected")
    http_status = 503


class DeviceConfigError(DeviceError):
    code = "device_config_invalid"
    message = N_("Unknown device setting «%(config)s»: use pcsc:, sim:, cups:, file: or serial:")


class NoReader(DeviceError):
    code = "reader_not_found"
    message = N_("Card reader «%(reader)s» is not connected. Connected readers: %(available)s")


class NoCard(DeviceError):
    code = "card_not_present"
    message = N_("No card was put on the reader within %(seconds)s s")


class CardRemoved(DeviceError):
    code = "card_removed"
    message = N_("The card was taken off the reader during the operation")


class CardCommunicationError(DeviceError):
    code = "card_communication"
    message = N_("The card did not answer correctly (%(detail)s)")


class PrinterNotFound(DeviceError):
    code = "printer_not_found"
    message = N_("Printer queue «%(queue)s» does not exist. Queues available: %(available)s")


class PrintFailed(DeviceError):
    code = "print_failed"
    message = N_("The printer did not print the job: %(detail)s")


class DriverMissing(DeviceError):
    """A real device was configured on an installation set up for the demo (no drivers)."""
    code = "device_driver_missing"
    message = N_("The %(driver)s driver is not installed: run scripts/setup.sh --devices (or pip install "
                 "'unioncard[devices]')")


def require_driver(module: str, driver: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise DriverMissing(driver=driver)
