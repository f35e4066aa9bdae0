import { forbidden } from '../errors.js'
import type { Principal } from './jwt.js'

/**
 * Who may act on whose data inside an org. A plain user is confined to their own `sub`; a
 * principal with one of the configured admin roles (ADMIN_ROLES, default `admin`) acts for and
 * reads every user of its own org, as a backend with a service token does. Other orgs stay
 * out of reach for everyone (they answer 404 at the store). Pure.
 */
export function mayActFor (principal: Principal, userId: string): boolean {
  return principal.admin || principal.userId === userId
}

/** The user a request acts as: its own, or (for an admin) the one it names. 403 otherwise. */
export function actingUser (principal: Principal, requested: string | undefined): string {
  if (requested === undefined || requested === principal.userId) return principal.userId
  if (!principal.admin) throw forbidden('A plain user acts only as itself: user_id must be the token\'s sub', { user_id: requested })
  return requested
}

/**
 * Whose data a listing shows: a plain user only its own (naming another user is 403); an admin
 * the user it names, or everyone (undefined).
 */
export function listedUser (principal: Principal, requested: string | undefined): string | undefined {
  return principal.admin ? requested : actingUser(principal, requested)
}
